"""SQLite (`polku dev`, the unit tests): plain statements sent straight to the aiosqlite driver.

The statements go to the driver under the batch's connection (shared.db.engine.sqlite_driver),
in the batch's transaction: one hop to the driver's thread each, and sqlite3 binds the rows of
an `executemany` in C. Through SQLAlchemy Core every column of every row was processed in
Python first, on the event loop's thread, which `polku dev` shares with ingest and deliveries.
(SQLite's `json_each` could take a whole batch as one parameter, as the PostgreSQL backend does
with `json_to_recordset`, but SQLite parses JSON several times slower than it inserts.)

Times are written as the text SQLAlchemy's SQLite DATETIME would write for them (`utc_text`),
so the store's reads and its comparisons of stored text (the timer sweep's `timer_due_at <=
now`) see exactly what an insert through SQLAlchemy would have left.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from services.stager.storage.base import (
    REPLACE_STATE,
    JournalEntry,
    MessageKey,
    StagerStorage,
)
from shared.db.engine import sqlite_driver

_JOURNALED = """
    select contact, message_id from processed_messages
    where (contact, message_id) in (select value ->> 0, value ->> 1 from json_each(?))
"""
_JOURNAL = """
    insert into processed_messages (contact, message_id, at, identified, message)
    values (?, ?, ?, ?, ?)
"""
_ALIASES = """
    select alias, canonical from contact_links where alias in (select value from json_each(?))
"""
_LOAD = "select state from contact_states where contact in (select value from json_each(?))"
_UPSERT_STATES = """
    insert into contact_states (journey_id, contact, journey_version, stage, stage_entered_at,
                                state, timer_due_at, journey_entered_at, first_channel, reached,
                                in_order, partition, updated_at)
    values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, current_timestamp)
""" + REPLACE_STATE
_INSERT_TRANSITIONS = """
    insert into transitions (transition_id, journey_id, journey_version, contact, from_stage,
                             to_stage, at, cause, rule_id, reason, seq, from_seconds,
                             contact_entered_at, first_channel, sample)
    values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_INSERT_OUTBOX = 'insert into outbox (partition, topic, "key", payload) values (?, ?, ?, ?)'


def utc_text(at: object) -> str | None:
    """`at` (an aware datetime, or None) as a `UtcTimestamp` column stores it on SQLite
    (shared/db/tables.py): UTC, 'YYYY-MM-DD HH:MM:SS.ffffff', microseconds always written."""
    if at is None:
        return None
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise ValueError(f"a timestamp column needs a UTC-aware datetime, not {at!r}")
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    return at.isoformat(" ", "microseconds")[:26]  # without the offset, "+00:00"


class PortableStorage(StagerStorage):
    async def claim(
        self, conn: AsyncConnection, entries: Sequence[JournalEntry]
    ) -> set[MessageKey]:
        # Looked up, then inserted: the batch's transaction is the only writer of the file (one
        # connection, shared.db.engine.sqlite_engine), so nothing can journal them in between.
        driver = await sqlite_driver(conn)
        keys = orjson.dumps([(e.contact, e.message_id) for e in entries]).decode()
        journaled = {(c, m) for c, m in await driver.fetchall(_JOURNALED, (keys,))}
        new = [e for e in entries if (e.contact, e.message_id) not in journaled]
        if new:
            await driver.executemany(_JOURNAL, [
                (e.contact, e.message_id, utc_text(e.at), e.identified, e.message) for e in new
            ])
        return {(e.contact, e.message_id) for e in new}

    async def aliases(self, conn: AsyncConnection, contacts: Sequence[str]) -> dict[str, str]:
        rows = await (await sqlite_driver(conn)).fetchall(
            _ALIASES, (orjson.dumps(list(contacts)).decode(),))
        return {alias: canonical for alias, canonical in rows}

    async def load_states(
        self, conn: AsyncConnection, contacts: Sequence[str]
    ) -> Iterable[Mapping[str, Any] | str]:
        # As text: the engine parses it.
        rows = await (await sqlite_driver(conn)).fetchall(
            _LOAD, (orjson.dumps(list(contacts)).decode(),))
        return [state for state, in rows]

    async def upsert_states(
        self, conn: AsyncConnection, partition: int, rows: list[dict[str, object]]
    ) -> None:
        # `state` is JSON text already (read_model.state_row): bound as it is.
        await (await sqlite_driver(conn)).executemany(_UPSERT_STATES, [
            (r["journey_id"], r["contact"], r["journey_version"], r["stage"],
             utc_text(r["stage_entered_at"]), r["state"], utc_text(r["timer_due_at"]),
             utc_text(r["journey_entered_at"]), r["first_channel"], r["reached"],
             r["in_order"], partition)
            for r in rows
        ])

    async def insert_transitions(
        self, conn: AsyncConnection, rows: list[dict[str, object]]
    ) -> None:
        await (await sqlite_driver(conn)).executemany(_INSERT_TRANSITIONS, [
            (r["transition_id"], r["journey_id"], r["journey_version"], r["contact"],
             r["from_stage"], r["to_stage"], utc_text(r["at"]), r["cause"], r["rule_id"],
             r["reason"], r["seq"], r["from_seconds"], utc_text(r["contact_entered_at"]),
             r["first_channel"], r["sample"])
            for r in rows
        ])

    async def insert_outbox(
        self, conn: AsyncConnection, partition: int, topic: str, rows: list[dict[str, bytes]]
    ) -> None:
        await (await sqlite_driver(conn)).executemany(
            _INSERT_OUTBOX, [(partition, topic, row["key"], row["payload"]) for row in rows])
