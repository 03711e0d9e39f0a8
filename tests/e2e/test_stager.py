"""The stager keeps every contact's stage from real Kafka into real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from services.stager import metrics
from shared.clock import ManualClock
from shared.db.tables import contact_states, transitions
from shared.settings import KafkaSettings
from tests.messages import produce, touchpoint
from tests.stager_harness import payloads, read_topic, running_stager, wait_consumed

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


async def _producer(kafka: KafkaSettings) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    await producer.start()
    return producer


async def _path(engine: AsyncEngine, contact: str) -> list[tuple[str | None, str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(transitions.c.from_stage, transitions.c.to_stage, transitions.c.rule_id)
            .where(transitions.c.contact == contact, transitions.c.journey_id == "trial")
            .order_by(transitions.c.seq)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_a_contact_moves_through_stages_and_each_transition_is_published_once(
    topic_names: KafkaSettings, engine: AsyncEngine
) -> None:
    contact = "e2e-alice"
    events = [touchpoint(contact, T0 + timedelta(hours=i), type="page", name="Blog")
              for i in range(3)]
    events.append(touchpoint(contact, T0 + timedelta(days=1), event="Order Completed"))
    producer = await _producer(topic_names)
    try:
        async with running_stager(topic_names, engine, ManualClock(T0)) as run:
            await produce(producer, topic_names.touchpoints_topic, events)
            await wait_consumed(engine, topic_names, run.group_id)
    finally:
        await producer.stop()

    assert await _path(engine, contact) == [
        (None, "aware", None),
        ("aware", "engaged", "engaged-after-3-pages"),
        ("engaged", "customer", "purchase"),
    ]
    async with engine.connect() as conn:
        state = (await conn.execute(
            sa.select(contact_states).where(contact_states.c.contact == contact)
        )).mappings().one()
    assert state["stage"] == "customer"
    assert state["stage_entered_at"] == T0 + timedelta(days=1)
    # Inactivity is watched from the last event on: the timer is indexed for the sweep.
    assert state["timer_due_at"] == T0 + timedelta(days=31)

    published = payloads(await read_topic(topic_names, topic_names.transitions_topic, 3))
    assert [(p["from"] and p["from"]["id"], p["to"]["id"]) for p in published] == [
        (None, "aware"), ("aware", "engaged"), ("engaged", "customer")
    ]
    purchase = published[-1]
    assert purchase["to"]["labels"] == {"fi": "Asiakas", "en": "Customer"}
    assert purchase["cause"] == {"kind": "event", "message_id": events[-1]["messageId"],
                                 "event": "Order Completed"}
    assert purchase["journey"] == {"id": "trial", "version": 1}


async def test_a_contact_inactive_for_30_days_moves_to_at_risk_and_fires_once(
    topic_names: KafkaSettings, engine: AsyncEngine
) -> None:
    contact = "e2e-quiet-bob"
    clock = ManualClock(T0 + timedelta(days=1))
    producer = await _producer(topic_names)
    try:
        async with running_stager(topic_names, engine, clock) as run:
            await produce(producer, topic_names.touchpoints_topic,
                          [touchpoint(contact, T0, event="Order Completed")])
            await wait_consumed(engine, topic_names, run.group_id)
            await asyncio.sleep(0.5)  # several timer sweeps: nothing is due yet
            assert await _path(engine, contact) == [(None, "customer", "purchase")]
            clock.set(T0 + timedelta(days=30, minutes=1))
            for _ in range(100):
                if len(await _path(engine, contact)) == 2:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)  # more sweeps must not fire it again
    finally:
        await producer.stop()

    path = await _path(engine, contact)
    assert path[1:] == [("customer", "at-risk", "gone-quiet")]
    async with engine.connect() as conn:
        fired = (await conn.execute(
            sa.select(transitions.c.at, transitions.c.cause)
            .where(transitions.c.contact == contact, transitions.c.to_stage == "at-risk")
        )).one()
    # Timer transitions happen at the deadline in event time, not when the sweep noticed.
    assert fired.at == T0 + timedelta(days=30)
    assert fired.cause == "timer:gone-quiet"
    published = payloads(await read_topic(topic_names, topic_names.transitions_topic, 2))
    assert [p["cause"] for p in published if p["to"]["id"] == "at-risk"] == [
        {"kind": "timer", "rule": "gone-quiet"}
    ]


async def test_a_redelivered_message_changes_nothing(
    topic_names: KafkaSettings, engine: AsyncEngine
) -> None:
    contact = "e2e-twice-carol"
    order = touchpoint(contact, T0, event="Order Completed")
    producer = await _producer(topic_names)
    try:
        async with running_stager(topic_names, engine, ManualClock(T0)) as run:
            await produce(producer, topic_names.touchpoints_topic, [order, order])
            await wait_consumed(engine, topic_names, run.group_id)
            await produce(producer, topic_names.touchpoints_topic, [order])
            await wait_consumed(engine, topic_names, run.group_id)
    finally:
        await producer.stop()
    assert await _path(engine, contact) == [(None, "customer", "purchase")]


async def test_malformed_events_are_dead_lettered_and_the_partition_keeps_flowing(
    topic_names: KafkaSettings, engine: AsyncEngine
) -> None:
    contact = "e2e-dora"
    dead_before = metrics.DEAD_LETTERS.labels("invalid_json")._value.get()
    producer = await _producer(topic_names)
    missing_event = touchpoint(contact, T0)  # a track call without an event name
    try:
        async with running_stager(topic_names, engine, ManualClock(T0)) as run:
            key = contact.encode()
            await producer.send_and_wait(topic_names.touchpoints_topic, b"\xff{not json", key=key)
            await produce(producer, topic_names.touchpoints_topic, [missing_event])
            await produce(producer, topic_names.touchpoints_topic,
                          [touchpoint(contact, T0, event="Order Completed")])
            await wait_consumed(engine, topic_names, run.group_id)
    finally:
        await producer.stop()

    assert await _path(engine, contact) == [(None, "customer", "purchase")]
    dead = await read_topic(topic_names, topic_names.dead_letter_topic, 2)
    assert len(dead) == 2
    headers = [dict(r.headers) for r in dead]
    assert [h["polku.error.reason"] for h in headers] == [b"invalid_json", b"invalid_field"]
    assert headers[1]["polku.error"].startswith(b"event:")
    assert {h["polku.source.topic"] for h in headers} == {topic_names.touchpoints_topic.encode()}
    offsets = sorted(int(h["polku.source.offset"]) for h in headers)
    assert offsets == [0, 1] and dead[0].value == b"\xff{not json"
    assert metrics.DEAD_LETTERS.labels("invalid_json")._value.get() == dead_before + 1
