"""What the actions worker logs about deliveries that go wrong: a line for each retry, each dead
letter and each opening and closing of an endpoint's breaker, naming ids only (real Kafka,
PostgreSQL and an HTTP receiver). A failing webhook is never silent, and the log never holds a
contact, a body, a receiver's answer or a URL (a query string may carry a token)."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.actions.deliveries import endpoint_id
from shared.clock import ManualClock
from shared.settings import DatabaseSettings, KafkaSettings
from tests.actions_harness import (
    Receiver,
    Reply,
    delivery_rows,
    eventually,
    fast_settings,
    produce_transitions,
    running_actions,
    transition,
    wait_attempts,
    write_journey,
)

ANSWER = b"stack trace of the receiver with its own secrets"


async def test_retries_dead_letters_and_the_breaker_are_logged_without_personal_data(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    receiver: Receiver, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="services.actions")
    healthy = False
    receiver.on("/hooks/nurture", lambda n: Reply(200) if healthy else Reply(500, body=ANSWER))
    clock = ManualClock()
    # Two attempts, then a dead letter; two failures in a row open the breaker for 0.5 s.
    settings = fast_settings(retry_schedule_s=(0, 60), breaker_failures=2, breaker_open_s=0.5)
    run = uuid.uuid4().hex[:8]
    first = transition(f"contact-{run}-1", to="prioritization", from_="learning",
                       rule_id="engaged")
    later = transition(f"contact-{run}-2", to="prioritization", from_="learning",
                       rule_id="engaged")
    nurture = endpoint_id(receiver.url("/hooks/nurture"))
    async with running_actions(topic_names, database_settings,
                               write_journey(tmp_path / "j", receiver), clock, settings):
        await produce_transitions(topic_names, [first])
        await wait_attempts(engine, [first], 1)
        clock.advance(timedelta(seconds=60))
        await wait_attempts(engine, [first], 2)
        [dead] = await delivery_rows(engine, [first["transition_id"]])
        assert dead.status == "failed"

        healthy = True
        await produce_transitions(topic_names, [later])  # the breaker's probe, once half-open
        await wait_attempts(engine, [later], 1)
        await eventually(lambda: any("closed" in r.getMessage() for r in caplog.records),
                         what="the breaker closing")

    lines = [r.getMessage() for r in caplog.records if r.name.startswith("services.actions")]
    retry = [m for m in lines if f"delivery {dead.id}" in m and "next attempt in 60.0 s" in m]
    assert len(retry) == 1, lines
    assert f"endpoint {nurture}" in retry[0] and "attempt 1" in retry[0]
    assert "status 500" in retry[0] and "error http_status" in retry[0]
    dead_letter = [m for m in lines if f"delivery {dead.id}" in m and "dead-lettered" in m]
    assert len(dead_letter) == 1 and "attempt 2" in dead_letter[0], lines
    opened = [m for m in lines if f"breaker of endpoint {nurture} opened" in m]
    assert len(opened) == 1 and "after 2 failed attempts" in opened[0], lines
    closed = [m for m in lines if f"breaker of endpoint {nurture} closed" in m]
    assert len(closed) == 1, lines

    everything = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert f"contact-{run}" not in everything
    assert "@example.com" not in everything  # the transitions' traits
    assert ANSWER.decode() not in everything
    assert receiver.url("/hooks/nurture") not in everything
