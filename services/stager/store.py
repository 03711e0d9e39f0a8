"""The stager's PostgreSQL (or SQLite) side: offsets, dedupe, contact states, transitions, outbox.

Exactly-once lives here. Each partition batch commits in ONE database transaction: the dedupe
records, the new contact states, the transitions, their outbox rows and the partition's next
offset. A crash before the commit leaves nothing; after it, the stored offset says where to
resume. The offset row is locked (`FOR UPDATE`) first, so two instances that both believe they
own a partition during a rebalance serialise, and the later one drops the records the earlier
one already applied.

What differs between databases (bulk claims, loads and inserts) is behind one storage protocol,
services/stager/storage/: `unnest` statements on PostgreSQL, SQLAlchemy Core elsewhere. The
backend is chosen from the engine's dialect once per transaction; everything on this page is the
same for both.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.stager.identity import (
    IdentityRules,
    forwarded,
    link_of,
    merge_link,
    merged_outbox_row,
)
from services.stager.offsets import Partition, lock_offset, save_offset
from services.stager.processing import (
    Changes,
    DeadLetter,
    MessageKey,
    Record,
    StateKey,
    apply_timers,
    apply_touchpoints,
    parse,
)
from services.stager.storage import StagerStorage, storage_for
from services.stager.storage.base import JournalEntry
from services.stager.suppression import drop_suppressed
from shared import wire
from shared.db.read_model import first_channel, state_row, transition_row
from shared.db.tables import (
    contact_states,
    outbox,
    processed_messages,
    transitions,
)
from shared.journey import ContactState, Journey, Touchpoint
from shared.wire import Topics

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    skipped: int = 0  # already applied by an earlier owner of the partition
    suppressed: int = 0  # touchpoints of erased people, dropped
    dead_letters: list[DeadLetter] = field(default_factory=list)
    changes: Changes = field(default_factory=Changes)
    next_offset: int | None = None
    latest_event_at: datetime | None = None  # of the batch's valid touchpoints (stream time)
    forwarded: int = 0  # sent with an id merged into another contact: forwarded to it
    links: list[str] = field(default_factory=list)  # what each linking touchpoint did


async def _claim_new(
    storage: StagerStorage,
    conn: AsyncConnection,
    touchpoints: Sequence[Touchpoint],
    values: Mapping[MessageKey, bytes],
) -> list[Touchpoint]:
    """Journal the touchpoints whose messageId this contact has not had before (first occurrence
    wins); those are the ones to apply."""
    unique: dict[MessageKey, Touchpoint] = {}
    for tp in touchpoints:
        unique.setdefault((tp.contact, tp.message_id), tp)
    if not unique:
        return []
    fresh = await storage.claim(conn, [
        JournalEntry(contact, message_id, tp.timestamp, tp.user_id == contact,
                     values[(contact, message_id)])
        for (contact, message_id), tp in unique.items()
    ])
    return [tp for key, tp in unique.items() if key in fresh]


async def _load_states(
    storage: StagerStorage, conn: AsyncConnection, contacts: Iterable[str]
) -> dict[StateKey, ContactState]:
    contacts = list(contacts)
    if not contacts:
        return {}
    return _decode_states(await storage.load_states(conn, contacts))


def _decode_states(stored: Iterable[Mapping[str, Any] | str]) -> dict[StateKey, ContactState]:
    states = {}
    for data in stored:
        state = ContactState.from_stored(data)
        states[(state.journey_id, state.contact)] = state
    return states


async def _persist(
    storage: StagerStorage,
    conn: AsyncConnection,
    partition: int,
    changes: Changes,
    journeys: Mapping[str, Journey],
    events: Mapping[str, str | None],
    topics: Topics,
) -> None:
    states = [state_row(step.state, step.next_deadline, _stages(journeys, key[0]))
              for key, step in changes.states.items() if step.state is not None]
    if states:
        await storage.upsert_states(conn, partition, states)
    if changes.restamped:
        await _restamp(conn, changes)
    if not changes.transitions:
        return
    await storage.insert_transitions(conn, [
        transition_row(t, seq, changes.from_seconds.get(t.transition_id),
                       changes.states[(t.journey_id, t.contact)].state)
        for t, seq in changes.transitions
    ])
    await storage.insert_outbox(conn, partition, topics.transitions, [
        {
            "key": t.contact.encode(),
            "payload": _json_bytes(
                wire.encode_transition(
                    t,
                    journeys.get(t.journey_id),
                    changes.state_after.get(t.transition_id),
                    events.get(t.cause),
                ),
            ),
        }
        for t, _ in changes.transitions
    ])


def _json_bytes(record: Mapping[str, object]) -> bytes:
    try:
        return orjson.dumps(record)
    except TypeError:  # what orjson refuses (a trait integer beyond 64 bits): the slow path
        return json.dumps(record, separators=(",", ":")).encode()


def _stages(journeys: Mapping[str, Journey], journey_id: str) -> tuple[str, ...]:
    journey = journeys.get(journey_id)
    return journey.stage_ids if journey is not None else ()


async def _restamp(conn: AsyncConnection, changes: Changes) -> None:
    """Give the earlier transitions of contacts whose journey entry or first-touch channel
    changed the new ones, as their state row has them (rare: merges, very late touchpoints)."""
    rows = []
    for journey_id, contact in changes.restamped:
        state = changes.states[(journey_id, contact)].state
        assert state is not None
        rows.append({"j": journey_id, "c": contact, "entered": state.journey_entered_at,
                     "channel": first_channel(state)})
    await conn.execute(
        sa.update(transitions)
        .where(transitions.c.journey_id == sa.bindparam("j"),
               transitions.c.contact == sa.bindparam("c"))
        .values(contact_entered_at=sa.bindparam("entered"),
                first_channel=sa.bindparam("channel")),
        rows,
    )


@dataclass(frozen=True)
class Identity:
    """What a batch needs to follow links between ids (services/stager/identity.py)."""

    rules: IdentityRules = field(default_factory=IdentityRules)
    partitions: int = 1  # of the touchpoints topic: where each id's partition is
    until: datetime | None = None  # the partition's timer time; a merged contact's timers run to it


async def apply_batch(
    engine: AsyncEngine,
    where: Partition,
    records: Sequence[Record],
    journeys: Sequence[Journey],
    topics: Topics,
    identity: Identity = Identity(),
) -> BatchResult:
    """Apply one partition's records exactly once (see the module docstring).

    The batch runs in parts that end at each touchpoint linking two ids: the link is merged
    before the touchpoints after it are read, since it changes which contact they belong to.
    """
    result = BatchResult()
    storage = storage_for(engine)
    async with engine.begin() as conn:
        stored = await lock_offset(conn, where)
        fresh_records = [r for r in records if r.offset >= stored]
        result.skipped = len(records) - len(fresh_records)
        if not fresh_records:
            result.next_offset = stored
            return result
        touchpoints, values, result.dead_letters = parse(fresh_records)
        # Erased people's events go nowhere (docs/privacy.md).
        touchpoints, result.suppressed = await drop_suppressed(conn, touchpoints)
        if touchpoints:
            result.latest_event_at = max(tp.timestamp for tp in touchpoints)
        for part in _up_to_each_link(touchpoints):
            await _apply_part(storage, conn, where, part, values, journeys, topics, identity,
                              result)
        if result.dead_letters:
            await conn.execute(
                sa.insert(outbox),
                [_dead_letter_row(where, d, topics) for d in result.dead_letters],
            )
        result.next_offset = fresh_records[-1].offset + 1
        await save_offset(conn, where, result.next_offset)
    return result


def _up_to_each_link(touchpoints: Sequence[Touchpoint]) -> Iterable[list[Touchpoint]]:
    part: list[Touchpoint] = []
    for tp in touchpoints:
        part.append(tp)
        if link_of(tp) is not None:
            yield part
            part = []
    if part:
        yield part


async def _apply_part(
    storage: StagerStorage,
    conn: AsyncConnection,
    where: Partition,
    touchpoints: list[Touchpoint],
    values: Mapping[MessageKey, bytes],
    journeys: Sequence[Journey],
    topics: Topics,
    identity: Identity,
    result: BatchResult,
) -> None:
    by_id = {j.id: j for j in journeys}
    merged_into = await storage.aliases(conn, list({tp.contact for tp in touchpoints}))
    if merged_into:
        # Sent with an id merged into another contact: that contact's, on its partition.
        away = [tp for tp in touchpoints if tp.contact in merged_into]
        await storage.insert_outbox(conn, where.partition, topics.touchpoints, [
            {"key": merged_into[tp.contact].encode(),
             "payload": forwarded(values[(tp.contact, tp.message_id)],
                                  merged_into[tp.contact], tp.contact)}
            for tp in away
        ])
        result.forwarded += len(away)
        touchpoints = [tp for tp in touchpoints if tp.contact not in merged_into]
    new = await _claim_new(storage, conn, touchpoints, values)
    result.applied += len(new)
    result.duplicates += len(touchpoints) - len(new)
    states = await _load_states(storage, conn, {tp.contact for tp in new})
    changes = apply_touchpoints(states, new, journeys)
    events = {tp.message_id: tp.event or tp.name for tp in new}
    await _persist(storage, conn, where.partition, changes, by_id, events, topics)
    result.changes.extend(changes)

    link = link_of(new[-1]) if new and new[-1] is touchpoints[-1] else None
    if link is None:
        return
    merged = await merge_link(conn, storage, link, rules=identity.rules, journeys=journeys,
                              where=where, partitions=identity.partitions,
                              until=identity.until)
    result.links.append(merged.outcome)
    if merged.changes is None or merged.record is None:
        return
    # Downstream hears of the link first, then of the stage changes it made.
    await storage.insert_outbox(conn, where.partition, topics.transitions,
                                [merged_outbox_row(merged.record, link.canonical)])
    await _persist(storage, conn, where.partition, merged.changes, by_id, {}, topics)
    result.changes.extend(merged.changes)


async def dead_letter_record(
    engine: AsyncEngine, where: Partition, dead: DeadLetter, topics: Topics
) -> bool:
    """Set one record aside on the dead-letter topic and move the partition past it, in one
    transaction (so it is dead-lettered exactly once). False if an earlier owner of the
    partition already moved past it."""
    async with engine.begin() as conn:
        stored = await lock_offset(conn, where)
        if dead.offset < stored:
            return False
        await conn.execute(sa.insert(outbox), [_dead_letter_row(where, dead, topics)])
        await save_offset(conn, where, dead.offset + 1)
    return True


def _dead_letter_row(where: Partition, dead: DeadLetter, topics: Topics) -> dict[str, object]:
    # The message (shared.wire) for the record the batch rejected (processing.DeadLetter).
    letter = wire.DeadLetter(dead.key, dead.value, where.topic, where.partition, dead.offset,
                             dead.reason, dead.error)
    return {
        "partition": where.partition,
        "topic": topics.dead_letters,
        "key": letter.key,
        "payload": letter.value,
        "headers": letter.headers(),
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
    storage = storage_for(engine)
    async with engine.begin() as conn:
        await lock_offset(conn, where)
        rows = await conn.execute(
            sa.select(contact_states.c.state)
            .where(
                contact_states.c.partition == where.partition,
                contact_states.c.timer_due_at <= now,
            )
            .order_by(contact_states.c.timer_due_at)
            .limit(limit)
        )
        states = _decode_states(rows.scalars())
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
        await _persist(storage, conn, where.partition, changes, by_id, {}, topics)
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
