"""Delivering transitions as signed webhooks to real local receivers (real Kafka, PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clock import ManualClock
from shared.settings import DatabaseSettings, KafkaSettings
from tests.actions_harness import (
    SECRET,
    SECRET_ENV,
    Receiver,
    Reply,
    delivery_rows,
    eventually,
    fast_settings,
    produce_transitions,
    running_actions,
    transition,
    write_journey,
)


async def test_a_transition_reaches_each_matching_endpoint_once_signed_even_if_redelivered(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    receiver: Receiver, tmp_path: Path,
) -> None:
    secret_file = tmp_path / "crm.secret"
    secret_file.write_text(SECRET + "\n")
    journeys = write_journey(tmp_path / "journeys", receiver, secret_file=secret_file)
    handoff = transition("lead-1", traits={"email": "lead-1@example.com", "company": "Oy Ab"})
    nurture = transition("lead-2", to="prioritization", from_="learning", rule_id="engaged")
    unmatched = transition("lead-3", to="learning", from_=None, rule_id="engaged")
    async with running_actions(topic_names, database_settings, journeys, ManualClock()):
        # The stager publishes at least once: the same transition may arrive again.
        await produce_transitions(topic_names, [handoff, nurture, unmatched, handoff])
        await eventually(lambda: len(receiver.requests()) >= 3, what="three deliveries")
        await asyncio.sleep(1.0)  # time for a duplicate to show up, if there were one

    by_path = Counter(r.path for r in receiver.requests())
    assert by_path == {"/hooks/sales": 1, "/hooks/crm": 1, "/hooks/nurture": 1}
    sales, = receiver.requests("/hooks/sales")
    assert sales.verified() == handoff  # the full transition record, labels and all
    assert sales.headers["x-team"] == "sales"
    assert sales.headers["content-type"] == "application/json"
    crm, = receiver.requests("/hooks/crm")
    assert crm.verified() == {
        "v": 1, "type": "contact.stage_changed", "transition_id": handoff["transition_id"],
        "contact": "lead-1", "to": handoff["to"], "traits": {"email": "lead-1@example.com"},
    }
    assert sales.webhook_id != crm.webhook_id
    rows = await delivery_rows(engine, [handoff["transition_id"], nurture["transition_id"],
                                        unmatched["transition_id"]])
    assert sorted((r.id, r.status, r.attempts) for r in rows) == sorted(
        (r.webhook_id, "delivered", 1) for r in receiver.requests()
    )


async def test_a_failing_endpoint_is_retried_on_schedule_with_the_same_webhook_id(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    receiver: Receiver, tmp_path: Path,
) -> None:
    receiver.on("/hooks/sales", lambda n: Reply(500, body=b"db down") if n < 2 else Reply(200))
    clock = ManualClock()
    settings = fast_settings(retry_schedule_s=(0, 5, 300, 1800))
    handoff = transition("lead-retry")
    async with running_actions(topic_names, database_settings,
                               write_journey(tmp_path / "j", receiver), clock, settings):
        await produce_transitions(topic_names, [handoff])
        await eventually(lambda: len(receiver.requests("/hooks/sales")) == 1)
        sales = next(r for r in await delivery_rows(engine, [handoff["transition_id"]])
                     if r.headers.get("X-Team"))

        def attempts(n: int) -> Callable[[], Awaitable[bool]]:
            async def recorded() -> bool:
                rows = await delivery_rows(engine, [handoff["transition_id"]])
                return any(r.id == sales.id and r.attempts == n for r in rows)
            return recorded

        await eventually(attempts(1))
        row = next(r for r in await delivery_rows(engine, [handoff["transition_id"]])
                   if r.id == sales.id)
        assert row.status == "pending" and row.last_status == 500
        assert row.last_error == "HTTP 500: db down"
        assert row.next_attempt_at == clock.now() + timedelta(seconds=5)

        clock.advance(timedelta(seconds=4.9))
        await asyncio.sleep(0.5)
        assert len(receiver.requests("/hooks/sales")) == 1  # not before its time
        clock.advance(timedelta(seconds=0.1))
        await eventually(lambda: len(receiver.requests("/hooks/sales")) == 2)
        await eventually(attempts(2))
        clock.advance(timedelta(seconds=299))
        await asyncio.sleep(0.5)
        assert len(receiver.requests("/hooks/sales")) == 2
        clock.advance(timedelta(seconds=1))
        await eventually(lambda: len(receiver.requests("/hooks/sales")) == 3)
        await eventually(attempts(3))

    calls = receiver.requests("/hooks/sales")
    assert {c.webhook_id for c in calls} == {sales.id}
    assert all(c.verified() == handoff for c in calls)
    row = next(r for r in await delivery_rows(engine, [handoff["transition_id"]])
               if r.id == sales.id)
    assert row.status == "delivered" and row.last_status == 200


async def test_retry_after_on_429_and_503_postpones_the_next_attempt(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    receiver: Receiver, tmp_path: Path,
) -> None:
    receiver.on("/hooks/sales", lambda n: Reply(429, {"Retry-After": "120"}))
    receiver.on("/hooks/crm", lambda n: Reply(503, {"Retry-After": "2"}))
    clock = ManualClock()
    settings = fast_settings(retry_schedule_s=(0, 5, 300))
    handoff = transition("lead-busy")
    async with running_actions(topic_names, database_settings,
                               write_journey(tmp_path / "j", receiver), clock, settings):
        await produce_transitions(topic_names, [handoff])

        async def both_attempted() -> bool:
            rows = await delivery_rows(engine, [handoff["transition_id"]])
            return len(rows) == 2 and all(r.attempts == 1 for r in rows)

        await eventually(both_attempted)
        rows = {r.last_status: r for r in await delivery_rows(engine, [handoff["transition_id"]])}
    # Longer than the schedule's 5 s: honoured; shorter: the schedule still applies.
    assert rows[429].next_attempt_at == clock.now() + timedelta(seconds=120)
    assert rows[503].next_attempt_at == clock.now() + timedelta(seconds=5)


async def test_redirects_are_not_followed_and_slow_answers_time_out(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    receiver: Receiver, tmp_path: Path,
) -> None:
    receiver.on("/hooks/sales", lambda n: Reply(302, {"Location": receiver.url("/elsewhere")}))
    receiver.on("/hooks/crm", lambda n: Reply(200, delay_s=3))
    settings = fast_settings(attempt_timeout_s=0.5, lease_s=10)
    handoff = transition("lead-redirect")
    async with running_actions(topic_names, database_settings,
                               write_journey(tmp_path / "j", receiver), ManualClock(), settings):
        await produce_transitions(topic_names, [handoff])

        async def both_attempted() -> bool:
            rows = await delivery_rows(engine, [handoff["transition_id"]])
            return len(rows) == 2 and all(r.attempts == 1 for r in rows)

        await eventually(both_attempted)
        rows = await delivery_rows(engine, [handoff["transition_id"]])
    errors = sorted(r.last_error for r in rows)
    assert errors[0].startswith("HTTP 302 redirect to") and "not followed" in errors[0]
    assert errors[1] == "no answer within 0.5 s"
    assert all(r.status == "pending" for r in rows)
    assert receiver.requests("/elsewhere") == []


async def test_a_missing_secret_sends_nothing_unsigned_and_retries(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SECRET_ENV)
    handoff = transition("lead-unsigned", to="prioritization", from_="learning",
                         rule_id="engaged")
    async with running_actions(topic_names, database_settings,
                               write_journey(tmp_path / "j", receiver), ManualClock()):
        await produce_transitions(topic_names, [handoff])

        async def attempted() -> bool:
            rows = await delivery_rows(engine, [handoff["transition_id"]])
            return len(rows) == 1 and rows[0].attempts == 1

        await eventually(attempted)
        row, = await delivery_rows(engine, [handoff["transition_id"]])
    assert receiver.requests() == []
    assert row.status == "pending"
    assert row.last_error == f"signing secret unavailable: environment variable {SECRET_ENV} " \
                             "is not set"
