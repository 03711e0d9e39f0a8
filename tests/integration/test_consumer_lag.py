"""Consumer lag per partition, in records and seconds (shared/lag.py), as a worker reads a
backlog from real Kafka and from the embedded log: how far behind, how stale, 0 once caught up,
and no series for a partition the instance no longer owns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry, Gauge

from shared.db.engine import make_engine
from shared.db.migrate import upgrade
from shared.embedded_log import EmbeddedLog
from shared.kafka import ensure_topics, group_consumer
from shared.lag import ConsumerLag
from shared.settings import DatabaseSettings, KafkaSettings
from shared.streams import OutRecord, RecordConsumer

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


class Lag:
    """A ConsumerLag on gauges of a registry of the test's own, publishing on every call."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.lag = ConsumerLag(
            Gauge("lag_records", "records", ["partition"], registry=self.registry),
            Gauge("lag_seconds", "seconds", ["partition"], registry=self.registry),
            every_s=0.0,
        )

    def value(self, name: str, partition: int) -> float | None:
        return self.registry.get_sample_value(name, {"partition": str(partition)})


async def read(consumer: RecordConsumer, tp: TopicPartition, count: int) -> None:
    """Read exactly `count` records of `tp` (then stand at the next one)."""
    got = 0
    while got < count:
        batches = await consumer.getmany(tp, timeout_ms=1000, max_records=count - got)
        got += len(batches.get(tp, []))


async def check_backlog(consumer: RecordConsumer, tp: TopicPartition, total: int) -> None:
    lag = Lag()
    await read(consumer, tp, 4)
    newest = {tp: T0}  # the event time of the 4th record, as the worker would have noted it
    await lag.lag.publish(consumer, newest, T0 + timedelta(seconds=42))
    assert lag.value("lag_records", tp.partition) == total - 4
    assert lag.value("lag_seconds", tp.partition) == 42.0

    await read(consumer, tp, total - 4)
    await lag.lag.publish(consumer, newest, T0 + timedelta(seconds=50))
    # Caught up: not stale, however old the last event.
    assert lag.value("lag_records", tp.partition) == 0
    assert lag.value("lag_seconds", tp.partition) == 0


async def test_kafka_lag_counts_records_behind_and_seconds_since_the_newest_event(
    topic_names: KafkaSettings,
) -> None:
    topic = topic_names.touchpoints_topic
    await ensure_topics(topic_names, [topic])
    producer = AIOKafkaProducer(bootstrap_servers=topic_names.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, f"record {i}".encode(), partition=1)
    finally:
        await producer.stop()
    consumer = group_consumer(topic_names, f"lag-{topic}", session_timeout_ms=10_000,
                              heartbeat_interval_ms=3_000)
    consumer.subscribe([topic])
    await consumer.start()
    try:
        tp = TopicPartition(topic, 1)
        while tp not in consumer.assignment():
            await consumer.getmany(timeout_ms=100, max_records=1)
            await asyncio.sleep(0)
        consumer.seek(tp, 0)
        await check_backlog(consumer, tp, 10)
    finally:
        await consumer.stop()


@asynccontextmanager
async def embedded_log(tmp_path: Path, partitions: int) -> AsyncIterator[EmbeddedLog]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'polku.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = make_engine(DatabaseSettings(url_override=url))
    try:
        yield EmbeddedLog(engine, partitions=partitions)
    finally:
        await engine.dispose()


def records(topic: str, keys: Sequence[bytes]) -> list[OutRecord]:
    return [OutRecord(topic, key, b"{}") for key in keys]


async def test_embedded_lag_counts_records_behind_and_seconds_since_the_newest_event(
    tmp_path: Path,
) -> None:
    async with embedded_log(tmp_path, partitions=1) as log:
        await log.write(records("touchpoints", [b"k"] * 7))
        consumer = log.consumer("lag")
        consumer.subscribe(["touchpoints"])
        await consumer.start()
        await check_backlog(consumer, TopicPartition("touchpoints", 0), 7)


async def test_a_partition_no_longer_owned_loses_its_series(tmp_path: Path) -> None:
    async with embedded_log(tmp_path, partitions=2) as log:
        await log.write(records("touchpoints", [b"a", b"b", b"c", b"d"]))
        both = log.consumer("lag")
        both.subscribe(["touchpoints"])
        await both.start()
        await both.getmany(timeout_ms=0, max_records=1)  # learns both ends, reads one record
        lag = Lag()
        await lag.lag.publish(both, {}, T0)
        assert {lag.value("lag_records", p) is not None for p in (0, 1)} == {True}

        # After a rebalance this instance owns partition 0 only (the embedded consumer owns all
        # partitions of its log: a one-partition log over the same file stands in for that).
        one = EmbeddedLog(log.engine, partitions=1).consumer("lag")
        one.subscribe(["touchpoints"])
        await one.start()
        await one.getmany(timeout_ms=0, max_records=1)
        await lag.lag.publish(one, {}, T0)
        assert lag.value("lag_records", 0) is not None
        assert lag.value("lag_records", 1) is None
        assert lag.value("lag_seconds", 1) is None


async def test_it_publishes_at_most_once_per_interval(tmp_path: Path) -> None:
    clock = [100.0]
    registry = CollectorRegistry()
    lag = ConsumerLag(Gauge("r", "records", ["partition"], registry=registry),
                      Gauge("s", "seconds", ["partition"], registry=registry),
                      every_s=1.0, monotonic=lambda: clock[0])
    async with embedded_log(tmp_path, partitions=1) as log:
        tp = TopicPartition("touchpoints", 0)
        await log.write(records("touchpoints", [b"k"] * 3))
        consumer = log.consumer("lag")
        consumer.subscribe(["touchpoints"])
        await consumer.start()
        await consumer.getmany(timeout_ms=0, max_records=1)
        await lag.publish(consumer, {tp: T0}, T0)
        assert registry.get_sample_value("r", {"partition": "0"}) == 2
        await consumer.getmany(timeout_ms=0, max_records=2)
        clock[0] += 0.5
        await lag.publish(consumer, {tp: T0}, T0)
        assert registry.get_sample_value("r", {"partition": "0"}) == 2  # not yet
        clock[0] += 0.5
        await lag.publish(consumer, {tp: T0}, T0)
        assert registry.get_sample_value("r", {"partition": "0"}) == 0
