"""SIGKILL the stager again and again while events flow: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.engine import make_engine
from shared.db.tables import consumer_offsets, transitions
from shared.journey import load_journeys
from shared.kafka import ensure_topics
from shared.settings import DatabaseSettings, KafkaSettings
from shared.simulation import simulate
from tests.messages import produce, touchpoint
from tests.processes import ServiceProcess, service_env
from tests.stager_harness import JOURNEYS, payloads, read_topic, wait_consumed

SHAPES: list[dict[str, Any]] = [
    {"type": "page", "name": "Blog"},
    {"type": "page", "name": "Pricing"},
    {"type": "track", "event": "Webinar Registered"},
    {"type": "track", "event": "Order Completed"},
    {"type": "identify", "traits": {"plan": "pro"}},
]


def traffic(rng: random.Random, contacts: int, per_contact: int) -> list[dict[str, Any]]:
    # Recent event times, so no inactivity timer comes due while the test runs.
    start = datetime.now(UTC) - timedelta(days=2)
    messages = []
    for i in range(contacts * per_contact):
        contact = f"crash-{i % contacts}"
        at = start + timedelta(seconds=i)
        messages.append(touchpoint(contact, at, **rng.choice(SHAPES)))
    # Redeliveries: the same messageId again later, as SDK retries and rebalances cause.
    for m in rng.sample(messages, len(messages) // 20):
        messages.append(dict(m))
    return messages


async def consumed(engine: AsyncEngine, group_id: str) -> int:
    async with engine.connect() as conn:
        total = await conn.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(consumer_offsets.c.next_offset), 0))
            .where(consumer_offsets.c.group_id == group_id)
        )
    return int(total or 0)


@pytest.fixture
async def engine(own_database: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    """The test's own database (its stager runs on the real clock; see own_database)."""
    engine = make_engine(own_database)
    yield engine
    await engine.dispose()


async def test_repeated_sigkill_neither_loses_nor_doubles_a_transition(
    topic_names: KafkaSettings, own_database: DatabaseSettings, engine: AsyncEngine
) -> None:
    rng = random.Random(20261123)
    messages = traffic(rng, contacts=100, per_contact=60)
    await ensure_topics(topic_names, [topic_names.touchpoints_topic,
                                      topic_names.transitions_topic,
                                      topic_names.dead_letter_topic])
    group_id = f"crash-{uuid.uuid4().hex[:8]}"
    env = service_env(topic_names, own_database, POLKU_JOURNEYS_DIR=str(JOURNEYS),
                      POLKU_STAGER_GROUP_ID=group_id, POLKU_STAGER_MAX_BATCH="40",
                      POLKU_STAGER_SESSION_TIMEOUT_MS="6000",
                      POLKU_STAGER_HEARTBEAT_INTERVAL_MS="1000")
    producer = AIOKafkaProducer(bootstrap_servers=topic_names.bootstrap_servers, acks="all",
                                enable_idempotence=True)
    await producer.start()

    async def feed() -> None:
        # Steady traffic for ~25 s, so every kill lands while the stager is busy.
        for i in range(0, len(messages), 250):
            await produce(producer, topic_names.touchpoints_topic, messages[i:i + 250])
            await asyncio.sleep(1.0)

    kills = 0
    progress: list[int] = []
    try:
        feeding = asyncio.create_task(feed())
        while not feeding.done() or kills < 4:
            stager = ServiceProcess("stager", env).start()
            await asyncio.sleep(rng.uniform(4.0, 7.0))
            stager.kill()  # SIGKILL: no shutdown hook runs
            kills += 1
            progress.append(await consumed(engine, group_id))
        await feeding
        survivor = ServiceProcess("stager", env).start()
        try:
            await wait_consumed(engine, topic_names, group_id, timeout_s=120)
        finally:
            survivor.kill()
    finally:
        await producer.stop()

    assert kills >= 4
    # The kills landed mid-stream: each instance made progress and left work for the next.
    assert len({p for p in progress if 0 < p < len(messages)}) >= 2, progress
    await assert_same_as_offline_replay(engine, topic_names, messages)


async def assert_same_as_offline_replay(engine: AsyncEngine, topic_names: KafkaSettings,
                                        messages: list[dict[str, Any]]) -> None:
    """Every transition recorded once, none lost or extra, each published."""
    journey = load_journeys(JOURNEYS)[0]
    expected = {
        t.transition_id: (t.contact, t.from_stage, t.to_stage, t.rule_id, t.at)
        for path in simulate(journey, messages).values()
        for t in path
    }
    async with engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(transitions.c.transition_id, transitions.c.contact, transitions.c.from_stage,
                      transitions.c.to_stage, transitions.c.rule_id, transitions.c.at)
            .where(transitions.c.contact.like("crash-%"))
        )).all()
    stored = {r[0]: tuple(r[1:]) for r in rows}
    assert len(rows) == len(stored)  # no transition recorded twice
    assert stored == expected  # none lost, none extra, identical to an offline replay
    # Publishing is at-least-once; every transition reached the topic with its stable id.
    published = payloads(await read_topic(topic_names, topic_names.transitions_topic,
                                          len(expected)))
    assert {p["transition_id"] for p in published} == set(expected)


async def test_two_stagers_in_one_group_one_killed_again_and_again_apply_every_event_once(
    topic_names: KafkaSettings, own_database: DatabaseSettings, engine: AsyncEngine
) -> None:
    rng = random.Random(20261201)
    messages = traffic(rng, contacts=100, per_contact=60)
    await ensure_topics(topic_names, [topic_names.touchpoints_topic,
                                      topic_names.transitions_topic,
                                      topic_names.dead_letter_topic])
    env = service_env(topic_names, own_database, POLKU_JOURNEYS_DIR=str(JOURNEYS),
                      POLKU_STAGER_GROUP_ID=f"pair-{uuid.uuid4().hex[:8]}",
                      POLKU_STAGER_MAX_BATCH="40",
                      POLKU_STAGER_SESSION_TIMEOUT_MS="6000",
                      POLKU_STAGER_HEARTBEAT_INTERVAL_MS="1000")
    producer = AIOKafkaProducer(bootstrap_servers=topic_names.bootstrap_servers, acks="all",
                                enable_idempotence=True)
    await producer.start()
    # One member stays up throughout; the other joins, is killed mid-batch and joins again, so
    # partitions move back and forth under load and both sometimes believe they own one.
    steady = ServiceProcess("stager", env).start()
    kills = 0
    try:
        async def feed() -> None:
            for i in range(0, len(messages), 250):
                await produce(producer, topic_names.touchpoints_topic, messages[i:i + 250])
                await asyncio.sleep(1.0)

        feeding = asyncio.create_task(feed())
        while not feeding.done() or kills < 4:
            flaky = ServiceProcess("stager", env).start()
            await asyncio.sleep(rng.uniform(4.0, 7.0))
            flaky.kill()
            kills += 1
        await feeding
        group_id = env["POLKU_STAGER_GROUP_ID"]
        await wait_consumed(engine, topic_names, group_id, timeout_s=120)
        assert steady.process is not None and steady.process.poll() is None, steady.log_tail()
    finally:
        steady.kill()
        await producer.stop()
    assert kills >= 4
    await assert_same_as_offline_replay(engine, topic_names, messages)
