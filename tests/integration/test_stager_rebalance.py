"""A partition taken away mid-batch: the stager neither crashes nor moves a position it lost."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.stager.app import kafka_consumer
from services.stager.consumer import Stager
from services.stager.processing import Record
from services.stager.settings import StagerSettings
from shared.clock import ManualClock
from shared.journey import load_journeys
from shared.kafka import KafkaWriter, durable_producer, ensure_topics, group_consumer
from shared.settings import KafkaSettings
from tests.messages import touchpoint
from tests.stager_harness import JOURNEYS


async def wait_for(check: object, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


async def test_a_batch_for_a_partition_revoked_meanwhile_neither_crashes_nor_seeks(
    topic_names: KafkaSettings, engine: AsyncEngine
) -> None:
    await ensure_topics(topic_names, [topic_names.touchpoints_topic,
                                      topic_names.transitions_topic,
                                      topic_names.dead_letter_topic])
    group_id = f"rebalance-{uuid.uuid4().hex[:8]}"
    settings = StagerSettings(group_id=group_id, session_timeout_ms=6000,
                              heartbeat_interval_ms=500)
    producer = durable_producer(topic_names)
    await producer.start()
    stager = Stager(kafka_consumer(topic_names, settings), KafkaWriter(producer), engine,
                    settings, topic_names.topics, load_journeys(JOURNEYS), ManualClock())
    stager.consumer.subscribe([topic_names.touchpoints_topic])
    await stager.consumer.start()
    other = group_consumer(topic_names, group_id, session_timeout_ms=6000,
                           heartbeat_interval_ms=500)
    try:
        await wait_for(lambda: len(stager.consumer.assignment()) == topic_names.partitions)
        # A second member joins and takes some partitions away.
        other.subscribe([topic_names.touchpoints_topic])
        await other.start()
        # Both members poll, as running consumers do, until the group has settled.
        while not other.assignment() or other.assignment() & stager.consumer.assignment():
            await asyncio.gather(stager.consumer.getmany(timeout_ms=100),
                                 other.getmany(timeout_ms=100))
        lost = next(iter(other.assignment()))
        assert lost not in stager.consumer.assignment()
        # The stager's batch for it was in flight when it was revoked, and commits; then the
        # same records come round again (its prefetched copy): the stored offset is ahead, and
        # the position of a partition it no longer owns cannot be moved. Before, the seek
        # raised, and the seek in the error handler raised again, out of the stager's loop.
        records = [Record(0, b"k", json.dumps(
            touchpoint("rebalance-1", datetime.now(UTC), event="Order Completed")).encode())]
        await stager.apply(lost, records)
        await stager._apply_or_rewind(lost, records)
        assert lost not in stager.consumer.assignment()
    finally:
        await other.stop()
        await stager.consumer.stop()
        await producer.stop()
