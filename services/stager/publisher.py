"""Publishes outbox rows (transitions, merges, forwarded touchpoints, dead letters) to the log,
then deletes them.

At-least-once: a crash between the log's acknowledgement and the delete republishes the same
records. Transition records carry a stable `transition_id` for consumers to dedupe.

The stager publishes right after each batch that wrote to the outbox, so this is on the path
of every transition to its webhook. On PostgreSQL the read and the delete are one statement
each, outside a transaction (each is atomic by itself, and only this partition's owner reads or
deletes its rows): two round trips a round, where a transaction around each costs six.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.stager import metrics
from services.stager.store import OutboxRecord, delete_outbox, pending_outbox
from shared.db.tables import outbox
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
        pending = await _pending(engine, partition)
        if not pending:
            return total
        await writer.write([OutRecord(row.topic, row.key, row.payload, row.headers)
                            for row in pending])
        await _delete(engine, [row.id for row in pending])
        dead = sum(1 for row in pending if row.topic == topics.dead_letters)
        forwarded = sum(1 for row in pending if row.topic == topics.touchpoints)
        metrics.OUTBOX_PUBLISHED.labels("dead_letter").inc(dead)
        metrics.OUTBOX_PUBLISHED.labels("touchpoint").inc(forwarded)
        metrics.OUTBOX_PUBLISHED.labels("transition").inc(len(pending) - dead - forwarded)
        total += len(pending)
        if len(pending) < OUTBOX_BATCH:
            # That was all of it: only this partition's owner (us) adds rows, and it is here.
            return total


_PENDING = (
    sa.select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.payload, outbox.c.headers)
    .where(outbox.c.partition == sa.bindparam("partition"))
    .order_by(outbox.c.id)
    .limit(OUTBOX_BATCH)
)
# One statement text whatever the number of rows (an IN list would be prepared per length).
_DELETE = sa.text("DELETE FROM outbox WHERE id = ANY(CAST(:ids AS bigint[]))")


async def _pending(engine: AsyncEngine, partition: int) -> list[OutboxRecord]:
    if engine.dialect.name != "postgresql":
        return await pending_outbox(engine, partition, OUTBOX_BATCH)
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        rows = await conn.execute(_PENDING, {"partition": partition})
        return [OutboxRecord(int(r.id), r.topic, r.key, r.payload, r.headers) for r in rows]


async def _delete(engine: AsyncEngine, ids: Sequence[int]) -> None:
    if engine.dialect.name != "postgresql":
        await delete_outbox(engine, ids)
        return
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(_DELETE, {"ids": list(ids)})
