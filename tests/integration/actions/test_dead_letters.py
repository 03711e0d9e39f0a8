"""Dead letters, replay through the API, 410 Gone and malformed transition records."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clock import ManualClock
from shared.settings import DatabaseSettings, KafkaSettings
from tests.actions_harness import (
    Receiver,
    Reply,
    delivery_rows,
    eventually,
    fast_settings,
    produce_transitions,
    read_dead_letters,
    running_actions,
    transition,
    wait_attempts,
    write_journey,
)


def nurture(contact: str) -> dict[str, Any]:
    """A transition that only the /hooks/nurture endpoint receives."""
    return transition(contact, to="prioritization", from_="learning", rule_id="engaged")


async def test_exhausted_deliveries_become_dead_letters_and_replays_keep_the_webhook_id(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    receiver: Receiver, tmp_path: Path,
) -> None:
    healthy = False
    receiver.on("/hooks/nurture",
                lambda n: Reply(200) if healthy else Reply(500, body=b"x" * 5000))
    clock = ManualClock()
    settings = fast_settings(retry_schedule_s=(0, 60), response_excerpt_chars=100,
                             breaker_failures=100)
    first, second, later = nurture("dl-1"), nurture("dl-2"), nurture("dl-3")
    ids = [t["transition_id"] for t in (first, second, later)]
    async with running_actions(topic_names, database_settings,
                               write_journey(tmp_path / "j", receiver), clock, settings) as svc:
        await produce_transitions(topic_names, [first, second])
        await wait_attempts(engine, [first, second], 1)
        clock.advance(timedelta(seconds=60))
        await eventually(lambda: len(receiver.requests()) == 4)

        async def failed(count: int) -> bool:
            answer = await svc.api.get("/v1/deliveries", params={"status": "failed"})
            return len(answer.json()["deliveries"]) == count

        await eventually(lambda: failed(2), what="two dead letters")
        dead = (await svc.api.get("/v1/deliveries", params={"status": "failed"})).json()
        for item in dead["deliveries"]:
            assert item["attempts"] == 2 and item["last_status"] == 500
            assert item["last_error"] == "gave up after 2 attempts; last: HTTP 500: " + "x" * 100
            assert item["url"] == receiver.url("/hooks/nurture")
            assert item["failed_at"] is not None
        cutoff = clock.now() + timedelta(seconds=1)
        clock.advance(timedelta(seconds=2))
        await produce_transitions(topic_names, [later])
        await wait_attempts(engine, [later], 1)
        clock.advance(timedelta(seconds=60))
        await eventually(lambda: failed(3), what="three dead letters")

        healthy = True
        # One by hand ...
        one = dead["deliveries"][0]["id"]
        answer = await svc.api.post(f"/v1/deliveries/{one}/retry")
        assert answer.status_code == 202 and answer.json()["status"] == "pending"
        await eventually(lambda: [r.webhook_id for r in receiver.requests()].count(one) == 3)
        # ... and in bulk: only what failed since the cutoff.
        answer = await svc.api.post("/v1/deliveries/redeliver",
                                    params={"status": "failed", "since": cutoff.isoformat()})
        assert answer.status_code == 202 and answer.json() == {"redelivered": 1}
        await eventually(lambda: len(receiver.requests()) == 8)
        await eventually(lambda: failed(1))
        detail = (await svc.api.get(f"/v1/deliveries/{one}")).json()
        missing = (await svc.api.post("/v1/deliveries/msg_nope/retry"))

    assert missing.status_code == 404
    assert detail["status"] == "delivered" and detail["webhook_id"] == one
    assert json.loads(detail["payload"])["transition_id"] in ids[:2]
    rows = {r.id: r for r in await delivery_rows(engine, ids)}
    by_id: dict[str, list[Any]] = {}
    for request in receiver.requests():
        by_id.setdefault(request.webhook_id, []).append(request.verified())
    assert set(by_id) == set(rows)  # every attempt of a delivery carried its one webhook-id
    assert all(len({json.dumps(b) for b in bodies}) == 1 for bodies in by_id.values())
    assert sorted(r.status for r in rows.values()) == ["delivered", "delivered", "failed"]


async def test_410_gone_disables_the_endpoint_until_an_operator_enables_it(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    receiver: Receiver, tmp_path: Path,
) -> None:
    gone = True
    receiver.on("/hooks/nurture", lambda n: Reply(410, body=b"no such hook") if gone
                else Reply(200))
    clock = ManualClock()
    settings = fast_settings(retry_schedule_s=(0, 5), endpoint_concurrency=1)
    first, waiting, after = nurture("gone-1"), nurture("gone-2"), nurture("gone-3")
    async with running_actions(topic_names, database_settings,
                               write_journey(tmp_path / "j", receiver), clock, settings) as svc:
        await produce_transitions(topic_names, [first, waiting])

        async def endpoint_disabled() -> bool:
            found = (await svc.api.get("/v1/endpoints")).json()
            return any(e["disabled_at"] for e in found)

        await eventually(endpoint_disabled)
        await eventually(lambda: _statuses(engine, [first, waiting], ["failed", "failed"]))
        await produce_transitions(topic_names, [after])
        await eventually(lambda: _statuses(engine, [after], ["failed"]))
        assert len(receiver.requests()) == 1  # one 410 was enough; the rest waited or failed
        rows = await delivery_rows(engine, [t["transition_id"] for t in (first, waiting, after)])
        assert {r.last_error for r in rows if r.last_status is None} == {
            "endpoint disabled: answered 410 Gone"
        }
        endpoint = next(e for e in (await svc.api.get("/v1/endpoints")).json()
                        if e["disabled_at"])
        blocked = await svc.api.post(f"/v1/deliveries/{rows[0].id}/retry")
        assert blocked.status_code == 409

        gone = False
        enabled = await svc.api.post(f"/v1/endpoints/{endpoint['id']}/enable")
        assert enabled.json()["disabled_at"] is None
        since = (clock.now() - timedelta(hours=1)).isoformat()
        answer = await svc.api.post("/v1/deliveries/redeliver",
                                    params={"since": since, "endpoint": endpoint["id"]})
        assert answer.json() == {"redelivered": 3}
        await eventually(lambda: _statuses(engine, [first, waiting, after], ["delivered"] * 3))
    assert {r.webhook_id for r in receiver.requests()} == {r.id for r in rows}


async def _statuses(engine: AsyncEngine, transitions: list[dict[str, Any]],
                    expected: list[str]) -> bool:
    rows = await delivery_rows(engine, [str(t["transition_id"]) for t in transitions])
    return sorted(r.status for r in rows) == sorted(expected)


async def test_records_that_are_not_transitions_go_to_the_dead_letter_topic_without_stalling(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    receiver: Receiver, tmp_path: Path,
) -> None:
    good = nurture("after-poison")
    async with running_actions(topic_names, database_settings,
                               write_journey(tmp_path / "j", receiver), ManualClock()):
        await produce_transitions(topic_names, [], raw=[b"{not json", b'{"v": 1}'])
        await produce_transitions(topic_names, [good])
        await eventually(lambda: len(receiver.requests()) == 1)
    consumer = AIOKafkaConsumer(topic_names.dead_letter_topic,
                                bootstrap_servers=topic_names.bootstrap_servers,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        batch = await asyncio.wait_for(consumer.getmany(timeout_ms=5000), 10)
    finally:
        await consumer.stop()
    records = [r for messages in batch.values() for r in messages]
    reasons = sorted(dict(r.headers)["polku.error.reason"].decode() for r in records)
    assert reasons == ["invalid_field", "invalid_json"]
    assert {r.value for r in records} == {b"{not json", b'{"v": 1}'}


async def test_a_transition_the_database_refuses_is_dead_lettered_and_the_next_one_delivered(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    receiver: Receiver, tmp_path: Path,
) -> None:
    # Well-formed JSON the parser accepts, from a producer other than the stager: PostgreSQL
    # refuses the NUL byte in its contact. Before, the worker retried it for ever.
    poison, before, after = nurture("nul\x00contact"), nurture("before-nul"), nurture("after-nul")
    async with running_actions(topic_names, database_settings,
                               write_journey(tmp_path / "j", receiver), ManualClock()):
        await produce_transitions(topic_names, [before, poison, after])
        await eventually(lambda: len(receiver.requests()) == 2, what="both good deliveries")
    delivered = {r.verified()["transition_id"] for r in receiver.requests()}
    assert delivered == {before["transition_id"], after["transition_id"]}
    records = await read_dead_letters(topic_names, expect=1)
    assert [json.loads(r.value)["transition_id"] for r in records] == [poison["transition_id"]]
    headers = {k: v.decode() for k, v in records[0].headers}
    assert headers["polku.error.reason"] == "database_rejected"
    assert headers["polku.error"] == ('CharacterNotInRepertoireError: invalid byte sequence '
                                      'for encoding "UTF8": 0x00')


async def test_a_receivers_answer_with_a_nul_byte_is_recorded_and_retried(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    receiver: Receiver, tmp_path: Path,
) -> None:
    answers = iter([Reply(500, body=b"broken\x00body"), Reply(200)])
    receiver.on("/hooks/nurture", lambda n: next(answers))
    clock = ManualClock()
    settings = fast_settings(retry_schedule_s=(0, 5))
    item = nurture("nul-answer")
    async with running_actions(topic_names, database_settings,
                               write_journey(tmp_path / "j", receiver), clock, settings):
        await produce_transitions(topic_names, [item])
        await wait_attempts(engine, [item], 1)
        clock.advance(timedelta(seconds=5))
        await eventually(lambda: _statuses(engine, [item], ["delivered"]))
    assert len(receiver.requests()) == 2
