"""Publishes outbox rows (transitions, dead letters) to Kafka, then deletes them.

At-least-once: a crash between the broker's acknowledgement and the delete republishes the
same records. Transition records carry a stable `transition_id` for consumers to dedupe.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from services.stager import metrics
from services.stager.store import delete_outbox, pending_outbox


async def publish_outbox(
    engine: AsyncEngine, producer: AIOKafkaProducer, partition: int, dead_letter_topic: str
) -> int:
    """Publish everything pending for `partition`, oldest first. Returns how many went out."""
    total = 0
    while True:
        pending = await pending_outbox(engine, partition)
        if not pending:
            return total
        sends = [
            await producer.send(
                row.topic,
                value=row.payload,
                key=row.key,
                headers=[(k, v.encode()) for k, v in (row.headers or {}).items()],
            )
            for row in pending
        ]
        await asyncio.gather(*sends)
        await delete_outbox(engine, [row.id for row in pending])
        for row in pending:
            kind = "dead_letter" if row.topic == dead_letter_topic else "transition"
            metrics.OUTBOX_PUBLISHED.labels(kind).inc()
        total += len(pending)
