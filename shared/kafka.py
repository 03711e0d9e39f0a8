"""Kafka plumbing shared by the services: topic creation, producers, readiness probes."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from shared.settings import KafkaSettings
from shared.streams import OutRecord
from shared.wire import partition_for_key

log = logging.getLogger("polku.kafka")

MIN_INSYNC_REPLICAS = "min.insync.replicas"


class TopicsNotCreated(Exception):
    """The broker refused to create a topic (e.g. more replicas asked than it has brokers)."""


@asynccontextmanager
async def _admin(settings: KafkaSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        request_timeout_ms=int(settings.request_timeout_s * 1000),
    )
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


def topic_configs(settings: KafkaSettings) -> dict[str, str]:
    """The configuration of a topic Polku creates: durability, and a retention that really
    removes records (segment.ms rolls segments often enough for retention.ms to reach them)."""
    return {
        MIN_INSYNC_REPLICAS: str(settings.min_insync_replicas),
        "retention.ms": str(int(settings.retention.total_seconds() * 1000)),
        "segment.ms": str(int(settings.segment.total_seconds() * 1000)),
    }


async def ensure_topics(settings: KafkaSettings, names: Iterable[str]) -> None:
    """Create the topics if missing, with the configured partitions, replication factor,
    min.insync.replicas and retention (`topic_configs`). Existing topics are left as they are
    (topic_durability_problems reports those below the settings). Raises TopicsNotCreated with
    the broker's reason."""
    async with _admin(settings) as admin:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if not missing:
            return
        response = await admin.create_topics([
            NewTopic(n, settings.partitions, replication_factor=settings.replication_factor,
                     topic_configs=topic_configs(settings))
            for n in missing
        ])
    refusals = []
    for outcome in response.to_object()["topic_errors"]:
        error = for_code(outcome["error_code"])
        # Already there: another process won the race; the topic exists either way.
        if outcome["error_code"] and error is not TopicAlreadyExistsError:
            refusals.append(f"{outcome['topic']}: {outcome.get('error_message') or error.__name__}")
    if refusals:
        raise TopicsNotCreated("; ".join(refusals))


async def topic_durability_problems(settings: KafkaSettings, names: Sequence[str]) -> list[str]:
    """What makes each topic less durable than the settings ask: missing, fewer replicas than
    POLKU_KAFKA_REPLICATION_FACTOR, or a lower min.insync.replicas. [] when all are fine."""
    async with _admin(settings) as admin:
        # Metadata of every topic, not of `names`: asking about a missing topic by name would
        # have a broker with auto.create.topics.enable create it, with the broker's defaults.
        described = {t["topic"]: t for t in await admin.describe_topics()}
        present = [n for n in names if n in described]
        configs = await admin.describe_configs([
            ConfigResource(ConfigResourceType.TOPIC, n, {MIN_INSYNC_REPLICAS: None})
            for n in present
        ]) if present else []
    min_isr: dict[str, int] = {}
    for response in configs:
        for resource in response.to_object()["resources"]:
            for entry in resource["config_entries"]:
                if entry["config_names"] == MIN_INSYNC_REPLICAS:
                    min_isr[resource["resource_name"]] = int(entry["config_value"])
    problems = []
    for name in names:
        topic = described.get(name)
        if topic is None or topic["error_code"]:
            problems.append(f"{name} does not exist")
            continue
        replicas = min((len(p["replicas"]) for p in topic["partitions"]), default=0)
        if replicas < settings.replication_factor:
            problems.append(f"{name} has replication factor {replicas}; the settings ask "
                            f"{settings.replication_factor}")
        isr = min_isr.get(name, 0)
        if isr < settings.min_insync_replicas:
            problems.append(f"{name} has min.insync.replicas {isr}; the settings ask "
                            f"{settings.min_insync_replicas}")
    return problems


class TopicDurability:
    """A readiness check: are the topics as durable as the settings ask?

    The answer is cached for `ttl_s` (a probe every few seconds must not cost admin requests
    each time, and replication changes rarely); a failed look is retried sooner.
    """

    def __init__(self, settings: KafkaSettings, names: Sequence[str], ttl_s: float = 30.0,
                 retry_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._names = list(names)
        self._ttl_s = ttl_s
        self._retry_s = retry_s
        self._clock = clock
        self._ok = False
        self._until = 0.0
        self.problems: list[str] = ["not checked yet"]

    async def __call__(self) -> bool:
        if self._clock() < self._until:
            return self._ok
        try:
            problems = await topic_durability_problems(self._settings, self._names)
        except (KafkaError, OSError, TimeoutError) as exc:
            self._ok, self._until = False, self._clock() + self._retry_s
            self.problems = [f"cannot describe the topics ({type(exc).__name__})"]
            return False
        if problems and problems != self.problems:
            log.error("Kafka topics are less durable than configured: %s", "; ".join(problems))
        self.problems = problems
        self._ok, self._until = not problems, self._clock() + self._ttl_s
        return self._ok


def durable_producer(settings: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """A producer whose acknowledged sends are on every in-sync replica, without duplicates.

    acks=all plus idempotence is what lets the ingest API promise "2xx means durable".
    """
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 2,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": int(settings.request_timeout_s * 1000),
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def group_consumer(settings: KafkaSettings, group_id: str, *, session_timeout_ms: int,
                   heartbeat_interval_ms: int, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer-group member that commits nothing by itself, starts at the earliest record of
    a partition its group has never read, and sees only committed (transactional) records."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=heartbeat_interval_ms,
        **overrides,
    )


async def broker_reachable(settings: KafkaSettings, timeout_s: float = 2.0) -> bool:
    """True when a broker answers a metadata request within `timeout_s`."""
    client = AIOKafkaClient(
        bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        return True
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await client.close()


class KafkaWriter:
    """`shared.streams.RecordWriter` over a started producer (durable_producer's guarantees)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def write(self, records: Sequence[OutRecord]) -> None:
        await asyncio.gather(*await self._send_in_batches(records))

    async def _send_in_batches(self, records: Sequence[OutRecord]) -> list[asyncio.Future[Any]]:
        """Hand `records` to the producer as one record batch per topic partition, in order.

        Same records, keys, partitions and per-partition order as one `producer.send` per
        record, at a third of the CPU: `send` costs a metadata wait, a future and a queue
        hand-off per record.
        """
        producer = self.producer
        futures: list[asyncio.Future[Any]] = []
        open_batches: dict[tuple[str, int], Any] = {}  # (topic, partition) -> BatchBuilder
        partitions_of: dict[str, list[int]] = {}
        for record in records:
            partitions = partitions_of.get(record.topic)
            if partitions is None:
                partitions = partitions_of[record.topic] = sorted(
                    await producer.partitions_for(record.topic))
            # As `producer.send` with the default partitioner (durable_producer keeps it): a
            # keyed record lands on its key's partition, a record without a key on any.
            if record.key is None:
                partition = random.choice(partitions)
            else:
                partition = partitions[partition_for_key(record.key, len(partitions))]
            target = (record.topic, partition)
            headers = [(k, v.encode()) for k, v in (record.headers or {}).items()]
            batch = open_batches.get(target)
            if batch is None:
                batch = open_batches[target] = producer.create_batch()
            if batch.append(key=record.key, value=record.value, timestamp=None,
                            headers=headers) is None:
                # Full: send it and start the next one (a record always fits an empty batch).
                futures.append(await producer.send_batch(batch, target[0], partition=target[1]))
                batch = open_batches[target] = producer.create_batch()
                batch.append(key=record.key, value=record.value, timestamp=None,
                             headers=headers)
        for (topic, partition), batch in open_batches.items():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures
