"""Publishes outbox rows (transitions, merges, forwarded touchpoints, dead letters) to the log,
then deletes them.

At-least-once: a crash between the log's acknowledgement and the delete republishes the same
records. Transition records carry a stable `transition_id` for consumers to dedupe.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from services.stager import metrics
from services.stager.store import delete_outbox, pending_outbox
from shared.streams import OutRecord, RecordWriter
from shared.wire import Topics

# Outbox rows read, published and deleted at a time.
OUTBOX_BATCH = 2000


async def publish_outbox(
    engine: AsyncEngine, writer: RecordWriter, partition: int, topics: Topics
) -> int:
    """Publish everything pending for `partition`, oldest first. Returns how many went out."""
    total = 0
    while True:
        pending = await pending_outbox(engine, partition, OUTBOX_BATCH)
        if not pending:
            return total
        await writer.write([OutRecord(row.topic, row.key, row.payload, row.headers)
                            for row in pending])
        await delete_outbox(engine, [row.id for row in pending])
        dead = sum(1 for row in pending if row.topic == topics.dead_letters)
        forwarded = sum(1 for row in pending if row.topic == topics.touchpoints)
        metrics.OUTBOX_PUBLISHED.labels("dead_letter").inc(dead)
        metrics.OUTBOX_PUBLISHED.labels("touchpoint").inc(forwarded)
        metrics.OUTBOX_PUBLISHED.labels("transition").inc(len(pending) - dead - forwarded)
        total += len(pending)
        if len(pending) < OUTBOX_BATCH:
            # That was all of it: only this partition's owner (us) adds rows, and it is here.
            return total
