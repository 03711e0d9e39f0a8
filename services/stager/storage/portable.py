"""SQLite (`polku dev`, the unit tests): SQLAlchemy Core, one parameter set per row.

Executemany with the dialect's ON CONFLICT constructs (shared/db/dialect.py, which also knows
PostgreSQL): slower per row than the PostgreSQL backend's `unnest` statements, and the plainest
statement of what each operation does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.stager.storage.base import JournalEntry, MessageKey, StagerStorage
from shared.db.dialect import insert
from shared.db.tables import (
    contact_links,
    contact_states,
    outbox,
    processed_messages,
    transitions,
)

# What an upsert replaces of an existing state row (all but the key), besides `updated_at`.
_REPLACED = ("journey_version", "stage", "stage_entered_at", "state", "timer_due_at", "partition",
             "journey_entered_at", "first_channel", "reached", "in_order")


class PortableStorage(StagerStorage):
    async def claim(
        self, conn: AsyncConnection, entries: Sequence[JournalEntry]
    ) -> set[MessageKey]:
        inserted = await conn.execute(
            insert(conn, processed_messages)
            .on_conflict_do_nothing()
            .returning(processed_messages.c.contact, processed_messages.c.message_id),
            [entry._asdict() for entry in entries],
        )
        return {(c, m) for c, m in inserted}

    async def aliases(self, conn: AsyncConnection, contacts: Sequence[str]) -> dict[str, str]:
        rows = await conn.execute(
            sa.select(contact_links.c.alias, contact_links.c.canonical)
            .where(contact_links.c.alias.in_(contacts))
        )
        return {alias: canonical for alias, canonical in rows}

    async def load_states(
        self, conn: AsyncConnection, contacts: Sequence[str]
    ) -> Iterable[Mapping[str, Any] | str]:
        # As text: the engine parses it (faster than SQLAlchemy's JSON type would).
        state = sa.type_coerce(contact_states.c.state, sa.Text)
        return (
            await conn.execute(sa.select(state).where(contact_states.c.contact.in_(contacts)))
        ).scalars()

    async def upsert_states(
        self, conn: AsyncConnection, partition: int, rows: list[dict[str, object]]
    ) -> None:
        # `state` is JSON text already (read_model.state_row): bound as text, not re-encoded.
        stmt = insert(conn, contact_states).values(
            state=sa.bindparam("state_text", type_=sa.Text))
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[contact_states.c.journey_id, contact_states.c.contact],
                set_={name: stmt.excluded[name] for name in _REPLACED}
                | {"updated_at": sa.func.now()},
            ),
            [{**row, "state_text": row["state"], "partition": partition} for row in rows],
        )

    async def insert_transitions(
        self, conn: AsyncConnection, rows: list[dict[str, object]]
    ) -> None:
        await conn.execute(sa.insert(transitions), rows)

    async def insert_outbox(
        self, conn: AsyncConnection, partition: int, topic: str, rows: list[dict[str, bytes]]
    ) -> None:
        await conn.execute(sa.insert(outbox), [
            {"partition": partition, "topic": topic, "headers": None, **row} for row in rows
        ])
