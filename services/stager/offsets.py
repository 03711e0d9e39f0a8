"""Where each partition of the stager's input stands: its next offset, kept in the database.

One row per (group, topic, partition) in `consumer_offsets`, written in the same transaction as
the state the records produced (store.py). Every transaction that changes a partition's contacts
locks its row first (`lock_offset`): two instances that both believe they own the partition
serialise on it, and so does a merge that takes over another partition's contact
(identity.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db.dialect import insert as _insert
from shared.db.tables import consumer_offsets


@dataclass(frozen=True)
class Partition:
    group_id: str
    topic: str
    partition: int


async def stored_offsets(engine: AsyncEngine, group_id: str, topic: str) -> dict[int, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(consumer_offsets.c.partition, consumer_offsets.c.next_offset).where(
                consumer_offsets.c.group_id == group_id, consumer_offsets.c.topic == topic
            )
        )
        return {int(p): int(o) for p, o in rows}


async def lock_offset(conn: AsyncConnection, where: Partition) -> int:
    """Lock the partition's offset row, creating it the first time so there is a row to lock."""
    lock = (
        sa.select(consumer_offsets.c.next_offset)
        .where(
            consumer_offsets.c.group_id == where.group_id,
            consumer_offsets.c.topic == where.topic,
            consumer_offsets.c.partition == where.partition,
        )
        .with_for_update()
    )
    stored = (await conn.execute(lock)).scalar_one_or_none()
    if stored is None:  # only the first batch ever of this group and partition
        await conn.execute(
            _insert(conn, consumer_offsets)
            .values(group_id=where.group_id, topic=where.topic, partition=where.partition,
                    next_offset=0)
            .on_conflict_do_nothing()
        )
        stored = (await conn.execute(lock)).scalar_one()
    return int(stored)


async def save_offset(conn: AsyncConnection, where: Partition, next_offset: int) -> None:
    await conn.execute(
        sa.update(consumer_offsets)
        .where(
            consumer_offsets.c.group_id == where.group_id,
            consumer_offsets.c.topic == where.topic,
            consumer_offsets.c.partition == where.partition,
        )
        .values(next_offset=next_offset, updated_at=sa.func.now())
    )
