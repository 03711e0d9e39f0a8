"""Runs a real stager (in this process or as a child) against the test run's Kafka and database."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from services.stager.app import kafka_consumer
from services.stager.consumer import Stager
from services.stager.settings import StagerSettings
from shared.clock import Clock
from shared.db.tables import consumer_offsets
from shared.journey import load_journeys
from shared.kafka import KafkaWriter, durable_producer, ensure_topics
from shared.settings import KafkaSettings

JOURNEYS = Path(__file__).parent / "journeys"


@dataclass
class RunningStager:
    stager: Stager
    group_id: str


@asynccontextmanager
async def running_stager(
    kafka: KafkaSettings, engine: AsyncEngine, clock: Clock, journeys_dir: Path = JOURNEYS,
    **settings_overrides: Any,
) -> AsyncIterator[RunningStager]:
    await ensure_topics(kafka, [kafka.touchpoints_topic, kafka.transitions_topic,
                                kafka.dead_letter_topic])
    producer = durable_producer(kafka)
    await producer.start()
    # A group of its own, unless the test runs several members of one group.
    group_id = settings_overrides.pop("group_id", None) or f"test-stager-{uuid.uuid4().hex[:8]}"
    settings = StagerSettings(**{"group_id": group_id, "timer_interval_s": 0.1,
                                 "poll_timeout_ms": 100, "stage_gauge_interval_s": 0.5,
                                 **settings_overrides})
    stager = Stager(kafka_consumer(kafka, settings), KafkaWriter(producer), engine, settings,
                    kafka.topics, load_journeys(journeys_dir), clock)
    task = asyncio.create_task(stager.run())
    try:
        yield RunningStager(stager, group_id)
    finally:
        stager.stop()
        await asyncio.wait_for(task, 30)
        await producer.stop()


async def end_offsets(kafka: KafkaSettings, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(kafka.partitions)]
        ends = await consumer.end_offsets(partitions)
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def wait_consumed(
    engine: AsyncEngine, kafka: KafkaSettings, group_id: str, timeout_s: float = 60
) -> None:
    """Wait until the stager's stored offsets reach the end of every touchpoints partition."""
    ends = await end_offsets(kafka, kafka.touchpoints_topic)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.select(consumer_offsets.c.partition, consumer_offsets.c.next_offset).where(
                    consumer_offsets.c.group_id == group_id,
                    consumer_offsets.c.topic == kafka.touchpoints_topic,
                )
            )
            stored = {int(p): int(o) for p, o in rows}
        if all(stored.get(p, 0) >= end for p, end in ends.items() if end > 0):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"stager did not catch up: stored {stored}, ends {ends}")


async def read_topic(kafka: KafkaSettings, topic: str, expect: int, timeout_s: float = 20
                     ) -> list[Any]:
    """Every record of `topic` from the beginning, once at least `expect` have arrived."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                group_id=f"reader-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(records) < expect:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                records.extend(messages)
        # A short grace period shows there is nothing extra (a doubled publish) behind them.
        batch = await consumer.getmany(timeout_ms=500)
        for messages in batch.values():
            records.extend(messages)
    finally:
        await consumer.stop()
    return records


def payloads(records: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]
