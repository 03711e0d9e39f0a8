"""Two stager instances in one group, merging ids whose partitions the other instance owns.

A merge on the userId's partition locks the anonymous id's partition too (its offset row), the
one the other instance is applying batches for. With merges crossing both ways at once, each
instance may hold the row the other waits for: PostgreSQL then aborts one transaction as a
deadlock, which the stager retries like an outage. Every merge must still complete, once.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.stager import consumer
from shared.clock import SystemClock
from shared.db.engine import make_engine
from shared.failures import is_outage
from shared.journey import load_journeys
from shared.kafka import durable_producer, ensure_topics
from shared.settings import DatabaseSettings, KafkaSettings
from tests.identity_harness import (
    Person,
    assert_merged_exactly_once,
    journeys_dir,
    people,
    settled,
)
from tests.messages import produce
from tests.stager_harness import running_stager


@pytest.fixture
async def engines(own_database: DatabaseSettings) -> AsyncIterator[tuple[AsyncEngine, ...]]:
    """One connection pool per instance, as two processes have, on the test's own database
    (the stagers run on the real clock; see own_database)."""
    pair = (make_engine(own_database), make_engine(own_database))
    yield pair
    for engine in pair:
        await engine.dispose()


def owner(partition: int, assignments: list[set[int]]) -> int:
    return next(i for i, owned in enumerate(assignments) if partition in owned)


async def test_merges_across_two_instances_partitions_all_complete_once(
    topic_names: KafkaSettings, engines: tuple[AsyncEngine, AsyncEngine], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    retried: list[str] = []  # each failure the stagers retried: its class, and SQLSTATE if any

    def noted(error: BaseException) -> bool:
        outage = is_outage(error)
        if outage:
            sqlstate = getattr(getattr(error, "orig", None), "sqlstate", None)
            retried.append(f"{type(error).__name__} {sqlstate or ''}".strip())
        return outage

    monkeypatch.setattr(consumer, "is_outage", noted)
    rng = random.Random(20261214)
    crowd = people(rng, 150)
    journeys = journeys_dir(tmp_path / "journeys")
    await ensure_topics(topic_names, [topic_names.touchpoints_topic,
                                      topic_names.transitions_topic,
                                      topic_names.dead_letter_topic])
    group_id = f"identity-pair-{uuid.uuid4().hex[:8]}"
    settings = {"group_id": group_id, "session_timeout_ms": 6000,
                "heartbeat_interval_ms": 500, "timer_interval_s": 0.2}
    first_engine, second_engine = engines
    async with running_stager(topic_names, first_engine, SystemClock(), journeys, **settings
                              ) as first, \
            running_stager(topic_names, second_engine, SystemClock(), journeys, **settings
                           ) as second:
        members = [first.stager.consumer, second.stager.consumer]

        def assignments() -> list[set[int]]:
            return [{tp.partition for tp in m.assignment()} for m in members]

        def settled_group() -> bool:
            """Each member owns some partitions, none owned by both (as during a rebalance)."""
            mine, theirs = assignments()
            return bool(mine and theirs and not mine & theirs
                        and mine | theirs == set(range(topic_names.partitions)))

        deadline = time.monotonic() + 30
        while not settled_group():
            assert time.monotonic() < deadline, f"the group never settled: {assignments()}"
            await asyncio.sleep(0.1)
        split = assignments()

        def crossing(person: Person, towards: int) -> bool:
            """The person's ids are on partitions of different instances, the userId's on
            instance `towards`."""
            user, anon = person.partitions(topic_names.partitions)
            return owner(user, split) == towards != owner(anon, split)

        # Merges cross between the instances both ways, many of them.
        assert all(sum(crossing(p, i) for p in crowd) >= 10 for i in (0, 1)), split

        producer = durable_producer(topic_names)
        await producer.start()
        try:
            for phase in ([m for p in crowd for m in p.before], [p.identify for p in crowd],
                          [m for p in crowd for m in p.after]):
                await produce(producer, topic_names.touchpoints_topic, phase)
                await settled(first_engine, topic_names, group_id)
        finally:
            await producer.stop()
        assert assignments() == split, "a rebalance: merges may not have crossed"

    # Only deadlocks were retried (PostgreSQL's 40P01), if any: nothing else went wrong.
    assert set(retried) <= {"DBAPIError 40P01"}, retried
    await assert_merged_exactly_once(first_engine, topic_names, crowd, load_journeys(journeys))
