"""SIGKILL the stager again and again while it merges people's ids: each merged exactly once.

150 people browse anonymously (and some already known), then identify; most have their two ids
on different partitions, so each merge locks another partition's offset row and the anonymous
touchpoints sent afterwards are forwarded there through the outbox. The stager is killed while
the identifies are being merged and while the later touchpoints are being forwarded.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.engine import make_engine
from shared.db.tables import consumer_offsets, contact_links
from shared.journey import load_journeys
from shared.kafka import ensure_topics
from shared.settings import DatabaseSettings, KafkaSettings
from tests.identity_harness import assert_merged_exactly_once, journeys_dir, people, settled
from tests.messages import produce
from tests.processes import ServiceProcess, service_env


@pytest.fixture
async def engine(own_database: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    """The test's own database (its stager runs on the real clock; see own_database)."""
    engine = make_engine(own_database)
    yield engine
    await engine.dispose()


async def scalar(engine: AsyncEngine, query: Any) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(query) or 0)


async def once_it_moves(measure: Callable[[], Awaitable[int]], timeout_s: float = 30) -> int:
    """Wait until `measure` grows (the stager is at work), then return it."""
    start = await measure()
    deadline = time.monotonic() + timeout_s
    while (now := await measure()) == start:
        assert time.monotonic() < deadline, "the stager made no progress"
        await asyncio.sleep(0.05)
    return now


async def test_repeated_sigkill_while_merging_links_everyone_exactly_once(
    topic_names: KafkaSettings, own_database: DatabaseSettings, engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    rng = random.Random(20261207)
    crowd = people(rng, 150)
    assert sum(p.apart(topic_names.partitions) for p in crowd) > len(crowd) // 2
    journeys = journeys_dir(tmp_path / "journeys")
    await ensure_topics(topic_names, [topic_names.touchpoints_topic,
                                      topic_names.transitions_topic,
                                      topic_names.dead_letter_topic])
    group_id = f"identity-crash-{uuid.uuid4().hex[:8]}"
    env = service_env(topic_names, own_database, POLKU_JOURNEYS_DIR=str(journeys),
                      POLKU_STAGER_GROUP_ID=group_id, POLKU_STAGER_MAX_BATCH="10",
                      POLKU_STAGER_TIMER_INTERVAL_S="0.2",
                      POLKU_STAGER_SESSION_TIMEOUT_MS="6000",
                      POLKU_STAGER_HEARTBEAT_INTERVAL_MS="1000")
    producer = AIOKafkaProducer(bootstrap_servers=topic_names.bootstrap_servers, acks="all",
                                enable_idempotence=True)
    await producer.start()

    async def linked() -> int:
        return await scalar(engine, sa.select(sa.func.count()).select_from(contact_links))

    async def consumed() -> int:
        return await scalar(engine, sa.select(sa.func.sum(consumer_offsets.c.next_offset))
                            .where(consumer_offsets.c.group_id == group_id))

    async def trickle(messages: list[dict[str, Any]], per_second: int) -> None:
        for i in range(0, len(messages), per_second // 5):
            await produce(producer, topic_names.touchpoints_topic,
                          messages[i:i + per_second // 5])
            await asyncio.sleep(0.2)

    stager = ServiceProcess("stager", env).start()
    kills: list[tuple[str, int]] = []  # (phase, its progress when the stager was killed)
    try:
        await produce(producer, topic_names.touchpoints_topic,
                      [m for p in crowd for m in p.before])
        await settled(engine, topic_names, group_id)

        # The identifies arrive over ~10 s; each kill lands right after a merge committed.
        feeding = asyncio.create_task(trickle([p.identify for p in crowd], per_second=15))
        while len(kills) < 3:
            await once_it_moves(linked)
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            stager.kill()
            kills.append(("merging", await linked()))
            stager = ServiceProcess("stager", env).start()
        await feeding
        await settled(engine, topic_names, group_id)

        # Touchpoints still sent with the anonymous ids: forwarded, with a kill in between.
        await produce(producer, topic_names.touchpoints_topic,
                      [m for p in crowd for m in p.after])
        await once_it_moves(consumed)
        await asyncio.sleep(rng.uniform(0.0, 0.3))
        stager.kill()
        kills.append(("forwarding", await consumed()))
        stager = ServiceProcess("stager", env).start()
        await settled(engine, topic_names, group_id)
    finally:
        stager.kill()
        await producer.stop()

    merging = [n for phase, n in kills if phase == "merging"]
    assert any(0 < n < len(crowd) for n in merging), kills  # killed with merges under way
    await assert_merged_exactly_once(engine, topic_names, crowd, load_journeys(journeys))
