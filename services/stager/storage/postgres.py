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

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.stager.storage.base import JournalEntry, MessageKey, StagerStorage

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
_UPSERT_STATES = sa.text("""
    insert into contact_states (journey_id, contact, journey_version, stage, stage_entered_at,
                                state, timer_due_at, journey_entered_at, first_channel, reached,
                                in_order, partition, updated_at)
    select journey_id, contact, journey_version, stage, stage_entered_at,
           CAST(state AS jsonb), timer_due_at, journey_entered_at, first_channel, reached,
           in_order, :partition, now()
    from unnest(CAST(:journey_ids AS text[]), CAST(:contacts AS text[]),
                CAST(:journey_versions AS int[]), CAST(:stages AS text[]),
                CAST(:stage_entered_ats AS timestamptz[]), CAST(:states AS text[]),
                CAST(:timer_due_ats AS timestamptz[]),
                CAST(:journey_entered_ats AS timestamptz[]), CAST(:first_channels AS text[]),
                CAST(:reacheds AS bigint[]), CAST(:in_orders AS smallint[]))
         AS t(journey_id, contact, journey_version, stage, stage_entered_at, state, timer_due_at,
              journey_entered_at, first_channel, reached, in_order)
    on conflict (journey_id, contact) do update set
        journey_version = excluded.journey_version, stage = excluded.stage,
        stage_entered_at = excluded.stage_entered_at, state = excluded.state,
        timer_due_at = excluded.timer_due_at, journey_entered_at = excluded.journey_entered_at,
        first_channel = excluded.first_channel, reached = excluded.reached,
        in_order = excluded.in_order, partition = excluded.partition,
        updated_at = excluded.updated_at
""")
_INSERT_TRANSITIONS = sa.text("""
    insert into transitions (transition_id, journey_id, journey_version, contact, from_stage,
                             to_stage, at, cause, rule_id, reason, seq, from_seconds,
                             contact_entered_at, first_channel, sample)
    select * from unnest(CAST(:transition_ids AS text[]), CAST(:journey_ids AS text[]),
                         CAST(:journey_versions AS int[]), CAST(:contacts AS text[]),
                         CAST(:from_stages AS text[]), CAST(:to_stages AS text[]),
                         CAST(:ats AS timestamptz[]), CAST(:causes AS text[]),
                         CAST(:rule_ids AS text[]), CAST(:reasons AS text[]),
                         CAST(:seqs AS int[]), CAST(:from_secondss AS float8[]),
                         CAST(:contact_entered_ats AS timestamptz[]),
                         CAST(:first_channels AS text[]), CAST(:samples AS smallint[]))
""")
_INSERT_OUTBOX = sa.text("""
    insert into outbox (partition, topic, key, payload)
    select :partition, :topic, key, payload
    from unnest(CAST(:keys AS bytea[]), CAST(:payloads AS bytea[])) AS t(key, payload)
""")

_STATE_COLUMNS = ("journey_id", "contact", "journey_version", "stage", "stage_entered_at",
                  "state", "timer_due_at", "journey_entered_at", "first_channel", "reached",
                  "in_order")
_TRANSITION_COLUMNS = ("transition_id", "journey_id", "journey_version", "contact", "from_stage",
                       "to_stage", "at", "cause", "rule_id", "reason", "seq", "from_seconds",
                       "contact_entered_at", "first_channel", "sample")


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
        # `state` is JSON text (read_model.state_row); the statement casts it to jsonb.
        await conn.execute(_UPSERT_STATES,
                           {"partition": partition, **_columns(rows, _STATE_COLUMNS)})

    async def insert_transitions(
        self, conn: AsyncConnection, rows: list[dict[str, object]]
    ) -> None:
        await conn.execute(_INSERT_TRANSITIONS, _columns(rows, _TRANSITION_COLUMNS))

    async def insert_outbox(
        self, conn: AsyncConnection, partition: int, topic: str, rows: list[dict[str, bytes]]
    ) -> None:
        await conn.execute(_INSERT_OUTBOX, {"partition": partition, "topic": topic,
                                            **_columns(rows, ("key", "payload"))})
