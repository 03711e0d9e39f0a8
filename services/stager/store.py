"""The stager's PostgreSQL (or SQLite) side: offsets, dedupe, contact states, transitions, outbox.

Exactly-once lives here. Each partition batch commits in ONE database transaction: the dedupe
records, the new contact states, the transitions, their outbox rows and the partition's next
offset. A crash before the commit leaves nothing; after it, the stored offset says where to
resume. The offset row is locked (`FOR UPDATE`) first, so two instances that both believe they
own a partition during a rebalance serialise, and the later one drops the records the earlier
one already applied.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.stager.processing import (
    Changes,
    DeadLetter,
    Record,
    StateKey,
    apply_timers,
    apply_touchpoints,
    parse,
    transition_message,
)
from shared.db.dialect import insert as _insert
from shared.db.dialect import is_postgres as _is_postgres
from shared.db.read_model import state_row, transition_row
from shared.db.tables import (
    consumer_offsets,
    contact_states,
    outbox,
    processed_messages,
    transitions,
)
from shared.journey.journey import Journey
from shared.journey.state import ContactState
from shared.journey.touchpoint import Touchpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Partition:
    group_id: str
    topic: str
    partition: int


@dataclass(frozen=True)
class Topics:
    transitions: str
    dead_letters: str


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    skipped: int = 0  # already applied by an earlier owner of the partition
    dead_letters: list[DeadLetter] = field(default_factory=list)
    changes: Changes = field(default_factory=Changes)
    next_offset: int | None = None
    latest_event_at: datetime | None = None  # of the batch's valid touchpoints (stream time)


# PostgreSQL bulk statements. Each takes one array per column and `unnest`s them server-side:
# one fixed statement per batch whatever its size, so asyncpg prepares it once per connection
# and SQLAlchemy processes a handful of parameters instead of one set per row. (The portable
# executemany forms below them stay for other databases.) Casts are written CAST(... AS ...)
# because `::` right after a bind name confuses sa.text's parameter parsing.
_CLAIM_PG = sa.text("""
    insert into processed_messages (contact, message_id)
    select * from unnest(CAST(:contacts AS text[]), CAST(:message_ids AS text[]))
    on conflict do nothing
    returning contact, message_id
""")
_LOAD_PG = sa.text("""
    select state::text from contact_states where contact = any(CAST(:contacts AS text[]))
""")
_UPSERT_STATES_PG = sa.text("""
    insert into contact_states (journey_id, contact, journey_version, stage, stage_entered_at,
                                state, timer_due_at, partition, updated_at)
    select journey_id, contact, journey_version, stage, stage_entered_at,
           CAST(state AS jsonb), timer_due_at, :partition, now()
    from unnest(CAST(:journey_ids AS text[]), CAST(:contacts AS text[]),
                CAST(:journey_versions AS int[]), CAST(:stages AS text[]),
                CAST(:stage_entered_ats AS timestamptz[]), CAST(:states AS text[]),
                CAST(:timer_due_ats AS timestamptz[]))
         AS t(journey_id, contact, journey_version, stage, stage_entered_at, state, timer_due_at)
    on conflict (journey_id, contact) do update set
        journey_version = excluded.journey_version, stage = excluded.stage,
        stage_entered_at = excluded.stage_entered_at, state = excluded.state,
        timer_due_at = excluded.timer_due_at, partition = excluded.partition,
        updated_at = excluded.updated_at
""")
_INSERT_TRANSITIONS_PG = sa.text("""
    insert into transitions (transition_id, journey_id, journey_version, contact, from_stage,
                             to_stage, at, cause, rule_id, reason, seq)
    select * from unnest(CAST(:transition_ids AS text[]), CAST(:journey_ids AS text[]),
                         CAST(:journey_versions AS int[]), CAST(:contacts AS text[]),
                         CAST(:from_stages AS text[]), CAST(:to_stages AS text[]),
                         CAST(:ats AS timestamptz[]), CAST(:causes AS text[]),
                         CAST(:rule_ids AS text[]), CAST(:reasons AS text[]),
                         CAST(:seqs AS int[]))
""")
_INSERT_OUTBOX_PG = sa.text("""
    insert into outbox (partition, topic, key, payload)
    select :partition, :topic, key, payload
    from unnest(CAST(:keys AS bytea[]), CAST(:payloads AS bytea[])) AS t(key, payload)
""")


def _columns(rows: Sequence[Mapping[str, object]], names: Iterable[str]) -> dict[str, list[object]]:
    """Row dicts turned into one list per column, for the `unnest` statements (`names` plural)."""
    return {f"{name}s": [row[name] for row in rows] for name in names}


async def stored_offsets(engine: AsyncEngine, group_id: str, topic: str) -> dict[int, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(consumer_offsets.c.partition, consumer_offsets.c.next_offset).where(
                consumer_offsets.c.group_id == group_id, consumer_offsets.c.topic == topic
            )
        )
        return {int(p): int(o) for p, o in rows}


async def _lock_offset(conn: AsyncConnection, where: Partition) -> int:
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


async def _save_offset(conn: AsyncConnection, where: Partition, next_offset: int) -> None:
    await conn.execute(
        sa.update(consumer_offsets)
        .where(
            consumer_offsets.c.group_id == where.group_id,
            consumer_offsets.c.topic == where.topic,
            consumer_offsets.c.partition == where.partition,
        )
        .values(next_offset=next_offset, updated_at=sa.func.now())
    )


async def _claim_new(conn: AsyncConnection, touchpoints: Sequence[Touchpoint]) -> list[Touchpoint]:
    """The touchpoints whose messageId this contact has not had before (first occurrence wins)."""
    unique: dict[tuple[str, str], Touchpoint] = {}
    for tp in touchpoints:
        unique.setdefault((tp.contact, tp.message_id), tp)
    if not unique:
        return []
    if _is_postgres(conn):
        inserted = await conn.execute(_CLAIM_PG, {"contacts": [c for c, _ in unique],
                                                  "message_ids": [m for _, m in unique]})
    else:
        inserted = await conn.execute(
            _insert(conn, processed_messages)
            .on_conflict_do_nothing()
            .returning(processed_messages.c.contact, processed_messages.c.message_id),
            [{"contact": c, "message_id": m} for c, m in unique],
        )
    fresh = {(c, m) for c, m in inserted}
    return [tp for key, tp in unique.items() if key in fresh]


async def _load_states(
    conn: AsyncConnection, contacts: Iterable[str]
) -> dict[StateKey, ContactState]:
    contacts = list(contacts)
    if not contacts:
        return {}
    if _is_postgres(conn):
        rows = await conn.execute(_LOAD_PG, {"contacts": contacts})
    else:
        rows = await conn.execute(
            sa.select(contact_states.c.state).where(contact_states.c.contact.in_(contacts))
        )
    return _decode_states(rows)


def _decode_states(rows: Iterable[Any]) -> dict[StateKey, ContactState]:
    states = {}
    for (data,) in rows:
        state = ContactState.from_stored(data)
        states[(state.journey_id, state.contact)] = state
    return states


async def _persist(
    conn: AsyncConnection,
    partition: int,
    changes: Changes,
    journeys: Mapping[str, Journey],
    events: Mapping[str, str | None],
    topics: Topics,
) -> None:
    states = [state_row(step.state, step.next_deadline)
              for step in changes.states.values() if step.state is not None]
    if states:
        await _upsert_states(conn, partition, states)
    if not changes.transitions:
        return
    await _insert_transitions(conn, [transition_row(t, seq) for t, seq in changes.transitions])
    await _insert_outbox(conn, partition, topics.transitions, [
        {
            "key": t.contact.encode(),
            "payload": json.dumps(
                transition_message(
                    t,
                    journeys.get(t.journey_id),
                    changes.state_after.get(t.transition_id),
                    events.get(t.cause),
                ),
                separators=(",", ":"),
            ).encode(),
        }
        for t, _ in changes.transitions
    ])


_STATE_COLUMNS = ("journey_id", "contact", "journey_version", "stage", "stage_entered_at",
                  "state", "timer_due_at")


async def _upsert_states(
    conn: AsyncConnection, partition: int, rows: list[dict[str, object]]
) -> None:
    if _is_postgres(conn):
        for row in rows:  # the statement casts the text to jsonb
            row["state"] = json.dumps(row["state"], separators=(",", ":"))
        await conn.execute(_UPSERT_STATES_PG,
                           {"partition": partition, **_columns(rows, _STATE_COLUMNS)})
        return
    stmt = _insert(conn, contact_states)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[contact_states.c.journey_id, contact_states.c.contact],
            set_={
                name: stmt.excluded[name]
                for name in ("journey_version", "stage", "stage_entered_at", "state",
                             "timer_due_at", "partition")
            }
            | {"updated_at": sa.func.now()},
        ),
        [{**row, "partition": partition} for row in rows],
    )


async def _insert_transitions(conn: AsyncConnection, rows: list[dict[str, object]]) -> None:
    if _is_postgres(conn):
        await conn.execute(_INSERT_TRANSITIONS_PG, _columns(rows, rows[0].keys()))
    else:
        await conn.execute(sa.insert(transitions), rows)


async def _insert_outbox(
    conn: AsyncConnection, partition: int, topic: str, rows: list[dict[str, bytes]]
) -> None:
    """Outbox rows without headers (transitions); `rows` holds each record's key and payload."""
    if _is_postgres(conn):
        await conn.execute(_INSERT_OUTBOX_PG, {"partition": partition, "topic": topic,
                                               **_columns(rows, ("key", "payload"))})
    else:
        await conn.execute(sa.insert(outbox), [
            {"partition": partition, "topic": topic, "headers": None, **row} for row in rows
        ])


async def apply_batch(
    engine: AsyncEngine,
    where: Partition,
    records: Sequence[Record],
    journeys: Sequence[Journey],
    topics: Topics,
) -> BatchResult:
    """Apply one partition's records exactly once (see the module docstring)."""
    result = BatchResult()
    async with engine.begin() as conn:
        stored = await _lock_offset(conn, where)
        fresh_records = [r for r in records if r.offset >= stored]
        result.skipped = len(records) - len(fresh_records)
        if not fresh_records:
            result.next_offset = stored
            return result
        touchpoints, result.dead_letters = parse(fresh_records)
        if touchpoints:
            result.latest_event_at = max(tp.timestamp for tp in touchpoints)
        new = await _claim_new(conn, touchpoints)
        result.applied, result.duplicates = len(new), len(touchpoints) - len(new)
        states = await _load_states(conn, {tp.contact for tp in new})
        result.changes = apply_touchpoints(states, new, journeys)
        by_id = {j.id: j for j in journeys}
        events = {tp.message_id: tp.event or tp.name for tp in new}
        await _persist(conn, where.partition, result.changes, by_id, events, topics)
        if result.dead_letters:
            await conn.execute(
                sa.insert(outbox),
                [_dead_letter_row(where, d, topics) for d in result.dead_letters],
            )
        result.next_offset = fresh_records[-1].offset + 1
        await _save_offset(conn, where, result.next_offset)
    return result


async def dead_letter_record(
    engine: AsyncEngine, where: Partition, dead: DeadLetter, topics: Topics
) -> bool:
    """Set one record aside on the dead-letter topic and move the partition past it, in one
    transaction (so it is dead-lettered exactly once). False if an earlier owner of the
    partition already moved past it."""
    async with engine.begin() as conn:
        stored = await _lock_offset(conn, where)
        if dead.offset < stored:
            return False
        await conn.execute(sa.insert(outbox), [_dead_letter_row(where, dead, topics)])
        await _save_offset(conn, where, dead.offset + 1)
    return True


def _dead_letter_row(where: Partition, dead: DeadLetter, topics: Topics) -> dict[str, object]:
    return {
        "partition": where.partition,
        "topic": topics.dead_letters,
        "key": dead.key,
        "payload": dead.value,
        "headers": {
            "polku.source.topic": where.topic,
            "polku.source.partition": str(where.partition),
            "polku.source.offset": str(dead.offset),
            "polku.error.reason": dead.reason,
            "polku.error": dead.error,
        },
    }


async def fire_timers(
    engine: AsyncEngine,
    where: Partition,
    journeys: Sequence[Journey],
    now: datetime,
    topics: Topics,
    limit: int = 1000,
) -> Changes:
    """Advance contacts whose timer deadline has passed. Serialised with batches by the lock."""
    by_id = {j.id: j for j in journeys}
    async with engine.begin() as conn:
        await _lock_offset(conn, where)
        rows = await conn.execute(
            sa.select(contact_states.c.state)
            .where(
                contact_states.c.partition == where.partition,
                contact_states.c.timer_due_at <= now,
            )
            .order_by(contact_states.c.timer_due_at)
            .limit(limit)
        )
        states = _decode_states(rows)
        if not states:
            return Changes()
        changes, failed = apply_timers(states, by_id, now)
        if failed:
            log.error("the engine failed to tick %d contact(s) of partition %d; their timers "
                      "wait for their next touchpoint", len(failed), where.partition)
        # Their journey is no longer loaded, or the engine cannot tick them: stop asking.
        unloaded = [key for key in states if key not in changes.states]
        if unloaded:
            await conn.execute(
                sa.update(contact_states)
                .where(sa.tuple_(contact_states.c.journey_id, contact_states.c.contact)
                       .in_(unloaded))
                .values(timer_due_at=None)
            )
        await _persist(conn, where.partition, changes, by_id, {}, topics)
    return changes


@dataclass(frozen=True)
class OutboxRecord:
    id: int
    topic: str
    key: bytes | None
    payload: bytes | None
    headers: dict[str, str] | None


async def pending_outbox(engine: AsyncEngine, partition: int, limit: int = 2000
                         ) -> list[OutboxRecord]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.payload,
                      outbox.c.headers)
            .where(outbox.c.partition == partition)
            .order_by(outbox.c.id)
            .limit(limit)
        )
        return [OutboxRecord(int(r.id), r.topic, r.key, r.payload, r.headers) for r in rows]


async def delete_outbox(engine: AsyncEngine, ids: Sequence[int]) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.delete(outbox).where(outbox.c.id.in_(list(ids))))


async def purge_dedupe(engine: AsyncEngine, older_than: datetime) -> int:
    async with engine.begin() as conn:
        result = await conn.execute(
            sa.delete(processed_messages).where(processed_messages.c.processed_at < older_than)
        )
        return int(result.rowcount or 0)


async def stage_counts(
    engine: AsyncEngine, partitions: Sequence[int]
) -> dict[tuple[str, str], int]:
    if not partitions:
        return {}
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(contact_states.c.journey_id, contact_states.c.stage, sa.func.count())
            .where(contact_states.c.partition.in_(list(partitions)),
                   contact_states.c.stage.is_not(None))
            .group_by(contact_states.c.journey_id, contact_states.c.stage)
        )
        return {(j, s): int(n) for j, s, n in rows}


DEDUPE_PURGE_EVERY = timedelta(minutes=10)
