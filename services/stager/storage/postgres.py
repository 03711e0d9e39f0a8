"""PostgreSQL: every bulk operation is one fixed statement over arrays, whatever the batch size.

Each statement takes one array per column and `unnest`s them server-side, so asyncpg prepares
it once per connection and SQLAlchemy processes a handful of parameters instead of one set per
row. This is the stager's hot path; the portable backend beside it does the same with
SQLAlchemy Core, one parameter set per row. Casts are written CAST(... AS ...) because `::`
right after a bind name confuses sa.text's parameter parsing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.stager.storage.base import (
    REPLACE_STATE,
    JournalEntry,
    MessageKey,
    StagerStorage,
)

_CLAIM = sa.text("""
    insert into processed_messages (contact, message_id, at, identified, message)
    select * from unnest(CAST(:contacts AS text[]), CAST(:message_ids AS text[]),
                         CAST(:ats AS timestamptz[]), CAST(:identifieds AS boolean[]),
                         CAST(:messages AS bytea[]))
    on conflict do nothing
    returning contact, message_id
""")
_ALIASES = sa.text("""
    select alias, canonical from contact_links where alias = any(CAST(:contacts AS text[]))
""")
_LOAD = sa.text("""
    select state::text from contact_states where contact = any(CAST(:contacts AS text[]))
""")
# States and transitions travel as ONE JSON array each, unpacked by json_to_recordset: asyncpg
# encodes a column array element by element (an isinstance check against collections.abc for
# every timestamp and integer), while orjson writes the whole batch in one C call and the server
# parses it on its own core. Each state's JSON is spliced in as it is (orjson.Fragment).
_UPSERT_STATES = sa.text("""
    insert into contact_states (journey_id, contact, journey_version, stage, stage_entered_at,
                                state, timer_due_at, journey_entered_at, first_channel, reached,
                                in_order, partition, updated_at)
    select journey_id, contact, journey_version, stage, stage_entered_at, state, timer_due_at,
           journey_entered_at, first_channel, reached, in_order, :partition, now()
    from json_to_recordset(CAST(:rows AS json))
         AS t(journey_id text, contact text, journey_version int, stage text,
              stage_entered_at timestamptz, state jsonb, timer_due_at timestamptz,
              journey_entered_at timestamptz, first_channel text, reached bigint,
              in_order smallint)
""" + REPLACE_STATE)
_INSERT_TRANSITIONS = sa.text("""
    insert into transitions (transition_id, journey_id, journey_version, contact, from_stage,
                             to_stage, at, cause, rule_id, reason, seq, from_seconds,
                             contact_entered_at, first_channel, sample)
    select * from json_to_recordset(CAST(:rows AS json))
         AS t(transition_id text, journey_id text, journey_version int, contact text,
              from_stage text, to_stage text, at timestamptz, cause text, rule_id text,
              reason text, seq int, from_seconds float8, contact_entered_at timestamptz,
              first_channel text, sample smallint)
""")
_INSERT_OUTBOX = sa.text("""
    insert into outbox (partition, topic, key, payload)
    select :partition, :topic, key, payload
    from unnest(CAST(:keys AS bytea[]), CAST(:payloads AS bytea[])) AS t(key, payload)
""")

def _json_rows(rows: list[dict[str, object]]) -> str:
    # Only text, numbers, times and None (a state's own JSON is a Fragment): orjson writes all.
    return orjson.dumps(rows).decode()


def _columns(rows: Sequence[Mapping[str, object]], names: Iterable[str]) -> dict[str, list[object]]:
    """Row dicts turned into one list per column, for the `unnest` statements (`names` plural)."""
    return {f"{name}s": [row[name] for row in rows] for name in names}


class PostgresStorage(StagerStorage):
    async def claim(
        self, conn: AsyncConnection, entries: Sequence[JournalEntry]
    ) -> set[MessageKey]:
        inserted = await conn.execute(_CLAIM, {
            "contacts": [e.contact for e in entries],
            "message_ids": [e.message_id for e in entries],
            "ats": [e.at for e in entries],
            "identifieds": [e.identified for e in entries],
            "messages": [e.message for e in entries],
        })
        return {(c, m) for c, m in inserted}

    async def aliases(self, conn: AsyncConnection, contacts: Sequence[str]) -> dict[str, str]:
        rows = await conn.execute(_ALIASES, {"contacts": list(contacts)})
        return {alias: canonical for alias, canonical in rows}

    async def load_states(
        self, conn: AsyncConnection, contacts: Sequence[str]
    ) -> Iterable[Mapping[str, Any] | str]:
        return (await conn.execute(_LOAD, {"contacts": list(contacts)})).scalars()

    async def upsert_states(
        self, conn: AsyncConnection, partition: int, rows: list[dict[str, object]]
    ) -> None:
        for row in rows:  # JSON text already (read_model.state_row): spliced in unchanged
            row["state"] = orjson.Fragment(str(row["state"]))
        await conn.execute(_UPSERT_STATES, {"partition": partition, "rows": _json_rows(rows)})

    async def insert_transitions(
        self, conn: AsyncConnection, rows: list[dict[str, object]]
    ) -> None:
        await conn.execute(_INSERT_TRANSITIONS, {"rows": _json_rows(rows)})

    async def insert_outbox(
        self, conn: AsyncConnection, partition: int, topic: str, rows: list[dict[str, bytes]]
    ) -> None:
        await conn.execute(_INSERT_OUTBOX, {"partition": partition, "topic": topic,
                                            **_columns(rows, ("key", "payload"))})
