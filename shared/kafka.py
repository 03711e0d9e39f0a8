"""Kafka plumbing shared by the services: topic creation, producers, a readiness probe."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from shared.settings import KafkaSettings


async def ensure_topics(settings: KafkaSettings, names: Iterable[str]) -> None:
    """Create the topics if missing, with the configured partition count."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        request_timeout_ms=int(settings.request_timeout_s * 1000),
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(n, settings.partitions, replication_factor=1) for n in missing]
                )
            except TopicAlreadyExistsError:
                pass  # another process won the race; the topic is there either way
    finally:
        await admin.close()


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
