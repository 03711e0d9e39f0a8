"""Publishes outbox rows (transitions, dead letters) to Kafka, then deletes them.

At-least-once: a crash between the broker's acknowledgement and the delete republishes the
same records. Transition records carry a stable `transition_id` for consumers to dedupe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy.ext.asyncio import AsyncEngine

from services.stager import metrics
from services.stager.store import OutboxRecord, delete_outbox, pending_outbox

# The partitioner `producer.send` uses (shared.kafka.durable_producer keeps the default): a
# record keyed by contact lands on the same partition as it would through `send`.
_PARTITIONER = DefaultPartitioner()
# Outbox rows read, published and deleted at a time.
OUTBOX_BATCH = 2000


async def publish_outbox(
    engine: AsyncEngine, producer: AIOKafkaProducer, partition: int, dead_letter_topic: str
) -> int:
    """Publish everything pending for `partition`, oldest first. Returns how many went out."""
    total = 0
    while True:
        pending = await pending_outbox(engine, partition, OUTBOX_BATCH)
        if not pending:
            return total
        await asyncio.gather(*await _send_in_batches(producer, pending))
        await delete_outbox(engine, [row.id for row in pending])
        dead = sum(1 for row in pending if row.topic == dead_letter_topic)
        metrics.OUTBOX_PUBLISHED.labels("dead_letter").inc(dead)
        metrics.OUTBOX_PUBLISHED.labels("transition").inc(len(pending) - dead)
        total += len(pending)
        if len(pending) < OUTBOX_BATCH:
            # That was all of it: only this partition's owner (us) adds rows, and it is here.
            return total


async def _send_in_batches(
    producer: AIOKafkaProducer, rows: Sequence[OutboxRecord]
) -> list[asyncio.Future[Any]]:
    """Hand `rows` to the producer as one record batch per topic partition, in order.

    Same records, keys, partitions and per-partition order as one `producer.send` per row, at a
    third of the CPU: `send` costs a metadata wait, a future and a queue hand-off per record.
    """
    futures: list[asyncio.Future[Any]] = []
    open_batches: dict[tuple[str, int], Any] = {}  # (topic, partition) -> BatchBuilder
    partitions_of: dict[str, list[int]] = {}
    for row in rows:
        partitions = partitions_of.get(row.topic)
        if partitions is None:
            partitions = partitions_of[row.topic] = list(await producer.partitions_for(row.topic))
        target = (row.topic, _PARTITIONER(row.key, partitions, partitions))
        headers = [(k, v.encode()) for k, v in (row.headers or {}).items()]
        batch = open_batches.get(target)
        if batch is None:
            batch = open_batches[target] = producer.create_batch()
        if batch.append(key=row.key, value=row.payload, timestamp=None, headers=headers) is None:
            # Full: send it and start the next one (a record always fits an empty batch).
            futures.append(await producer.send_batch(batch, target[0], partition=target[1]))
            batch = open_batches[target] = producer.create_batch()
            batch.append(key=row.key, value=row.payload, timestamp=None, headers=headers)
    for (topic, partition), batch in open_batches.items():
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures
