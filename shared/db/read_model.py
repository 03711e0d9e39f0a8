"""The contact read model: the rows the stager keeps per contact, and the view read back from them.

The stager writes a contact's state per journey (`contact_states`) and every transition it made
(`transitions`) in the same transaction as its offsets (services/stager/store.py); the ingest
service's read API shows them (services/ingest/read_api.py). Services never import each other,
so the shape of those rows lives here, between them: the writer builds its rows with
`state_row`/`transition_row` and the reader gets them back through `read_contact`. The state's
JSON column is the engine's own stored form (`ContactState.to_stored`/`from_stored`), so nothing
outside the engine decodes it.

One person may have several ids: an anonymous id merged into a known contact is a row of
`contact_links` (alias -> canonical), written by the stager when it merges. `read_person` answers
for the person whichever of their ids it is given: the canonical contact's states, the
transitions of every id (a merge deletes the alias's states but keeps its transitions), the
links, and the links the stager refused (`identity_conflicts`) that touch any of the ids.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db.dialect import is_postgres
from shared.db.tables import contact_links, contact_states, identity_conflicts, transitions
from shared.journey import ContactState, Transition


@dataclass(frozen=True)
class ContactJourney:
    """A contact in one journey: where it stands, and how it got there (oldest first)."""

    state: ContactState
    history: tuple[Transition, ...]


# Stages beyond this many have no bit in `contact_states.reached` (a BIGINT).
REACHED_BITS = 63


def progress(reached: Sequence[str], stages: Sequence[str]) -> tuple[int, int]:
    """The funnel's view of the stages a contact reached (in the order it first reached them),
    given the journey's stages in order: a bit per stage reached (bit i: the i-th stage), and
    how many stages from the first it reached in order, each first reached after the one
    before it (docs/analytics.md, "in order")."""
    first: dict[str, int] = {}
    for i, stage in enumerate(reached):
        first.setdefault(stage, i)
    mask = 0
    for bit, stage in enumerate(stages[:REACHED_BITS]):
        if stage in first:
            mask |= 1 << bit
    in_order, last = 0, -1
    for stage in stages:
        position = first.get(stage)
        if position is None or position < last:
            break
        in_order, last = in_order + 1, position
    return mask, in_order


def first_channel(state: ContactState) -> str | None:
    return state.first_touch.channel if state.first_touch is not None else None


def state_row(state: ContactState, timer_due_at: datetime | None,
              stages: Sequence[str] = ()) -> dict[str, object]:
    """The `contact_states` row of `state` (without `partition`, which the writer adds), for
    a journey whose stages are `stages`, in order.

    `stage` and `stage_entered_at` are copied out of the JSON into columns for the stage gauges
    and ad-hoc queries; `timer_due_at` is indexed for the stager's timer sweep; the analytics
    columns (the cohort, the first-touch channel, `progress`) are what the funnel counts.
    """
    reached, in_order = progress(state.reached, stages)
    return {
        "journey_id": state.journey_id,
        "contact": state.contact,
        "journey_version": state.journey_version,
        "stage": state.stage,
        "stage_entered_at": state.stage_entered_at,
        "state": state.stored_text(),
        "timer_due_at": timer_due_at,
        "journey_entered_at": state.journey_entered_at,
        "first_channel": first_channel(state),
        "reached": reached,
        "in_order": in_order,
    }


def transition_row(transition: Transition, seq: int, from_seconds: float | None = None,
                   contact: ContactState | None = None) -> dict[str, object]:
    """The `transitions` row of `transition`, the contact's `seq`-th in its journey, that
    ended a stay of `from_seconds` in its `from_stage`; `contact` is the contact's state as it
    is written with it, whose cohort and first-touch channel the row repeats."""
    return {
        "transition_id": transition.transition_id,
        "journey_id": transition.journey_id,
        "journey_version": transition.journey_version,
        "contact": transition.contact,
        "from_stage": transition.from_stage,
        "to_stage": transition.to_stage,
        "at": transition.at,
        "cause": transition.cause,
        "rule_id": transition.rule_id,
        "reason": transition.reason,
        "seq": seq,
        "from_seconds": from_seconds,
        "contact_entered_at": contact.journey_entered_at if contact is not None else None,
        "first_channel": first_channel(contact) if contact is not None else None,
        "sample": sample_of(transition.transition_id),
    }


SAMPLES = 64


def sample_of(transition_id: str) -> int:
    """The transition's sample bucket, 0 to SAMPLES - 1: a stable hash of its id, so each
    bucket holds an unbiased share of every stage's visits (docs/analytics.md)."""
    return zlib.crc32(transition_id.encode()) % SAMPLES


_HISTORY = (
    transitions.c.transition_id, transitions.c.journey_id, transitions.c.journey_version,
    transitions.c.contact, transitions.c.from_stage, transitions.c.to_stage, transitions.c.at,
    transitions.c.cause, transitions.c.rule_id, transitions.c.reason,
)


async def read_contact(engine: AsyncEngine, contact: str) -> list[ContactJourney]:
    """`contact` in every journey that has seen it, by journey id; empty if none has."""
    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                sa.select(contact_states.c.state).where(contact_states.c.contact == contact)
            )
        ).scalars().all()
        history = await conn.execute(
            sa.select(*_HISTORY)
            .where(transitions.c.contact == contact)
            .order_by(transitions.c.journey_id, transitions.c.seq)
        )
        by_journey: dict[str, list[Transition]] = {}
        for row in history:
            by_journey.setdefault(row.journey_id, []).append(Transition(**row._asdict()))
    states = sorted((ContactState.from_stored(data) for data in stored),
                    key=lambda state: state.journey_id)
    return [ContactJourney(state, tuple(by_journey.get(state.journey_id, ()))) for state in states]


@dataclass(frozen=True)
class Link:
    """`alias` was merged into the person by a call of `kind` (identify | alias): its messageId
    `cause`, its event time `linked_at`; `merged_at` is when the stager did it."""

    alias: str
    kind: str
    cause: str
    linked_at: datetime
    merged_at: datetime


@dataclass(frozen=True)
class Conflict:
    """A link the stager refused: `contact` asked to take `other` (one of them is the person's)."""

    reason: str  # both_identified | already_linked | too_many_ids
    contact: str
    other: str
    cause: str
    at: datetime


@dataclass(frozen=True)
class PersonJourney:
    """The person in one journey: the state (of the canonical contact if it has one, else of
    the first id that has), and the transitions of all their ids, in time order.

    `state` is None when only transitions are left (the ids' states were ended by a merge and
    the canonical contact has none in this journey)."""

    journey_id: str
    state: ContactState | None
    history: tuple[Transition, ...]


@dataclass(frozen=True)
class Person:
    """Everything kept about one person, found by any of their ids."""

    contact: str  # the canonical id
    links: tuple[Link, ...]  # the ids merged into it, oldest link first
    conflicts: tuple[Conflict, ...]
    journeys: tuple[PersonJourney, ...]  # by journey id

    @property
    def ids(self) -> tuple[str, ...]:
        return (self.contact, *(link.alias for link in self.links))


async def read_person(engine: AsyncEngine, contact: str) -> Person | None:
    """The person `contact` is an id of (the canonical id or one linked to it); None when no id
    of theirs has a state, a transition or a link."""
    if "\x00" in contact:
        # No stored id has one (ingest refuses them), and PostgreSQL refuses it as a parameter.
        return None
    async with engine.connect() as conn:
        if is_postgres(conn):
            # One snapshot for the five reads: a merge committing in between cannot tear them.
            await conn.execution_options(isolation_level="REPEATABLE READ")
        canonical = await conn.scalar(
            sa.select(contact_links.c.canonical).where(contact_links.c.alias == contact)
        ) or contact
        links = tuple(
            Link(row.alias, row.kind, row.cause, row.linked_at, row.merged_at)
            for row in await conn.execute(
                sa.select(contact_links).where(contact_links.c.canonical == canonical)
                .order_by(contact_links.c.linked_at, contact_links.c.alias)
            )
        )
        ids = (canonical, *(link.alias for link in links))
        states, history = await _states_and_history(conn, ids)
        conflicts = tuple(
            Conflict(row.reason, row.contact, row.other, row.cause, row.at)
            for row in await conn.execute(
                sa.select(identity_conflicts)
                .where(sa.or_(identity_conflicts.c.contact.in_(ids),
                              identity_conflicts.c.other.in_(ids)))
                .order_by(identity_conflicts.c.at, identity_conflicts.c.id)
            )
        )
    if not states and not history and not links:
        return None
    journeys = tuple(
        PersonJourney(journey_id, _state_of(states, ids, journey_id),
                      _in_time_order(history, ids, journey_id))
        for journey_id in sorted({j for j, _ in states} | {j for j, _ in history})
    )
    return Person(canonical, links, conflicts, journeys)


# (journey, contact) -> that contact's transitions in the journey, in the order they were made
Keyed: TypeAlias = dict[tuple[str, str], list[Transition]]


async def _states_and_history(
    conn: AsyncConnection, ids: Sequence[str]
) -> tuple[dict[tuple[str, str], ContactState], Keyed]:
    states = {
        (row.journey_id, row.contact): ContactState.from_stored(row.state)
        for row in await conn.execute(
            sa.select(contact_states.c.journey_id, contact_states.c.contact,
                      contact_states.c.state)
            .where(contact_states.c.contact.in_(ids))
        )
    }
    history: Keyed = {}
    for row in await conn.execute(
        sa.select(*_HISTORY).where(transitions.c.contact.in_(ids))
        .order_by(transitions.c.journey_id, transitions.c.contact, transitions.c.seq)
    ):
        history.setdefault((row.journey_id, row.contact), []).append(Transition(**row._asdict()))
    return states, history


def _state_of(states: dict[tuple[str, str], ContactState], ids: Iterable[str],
              journey_id: str) -> ContactState | None:
    return next((states[journey_id, i] for i in ids if (journey_id, i) in states), None)


def _in_time_order(history: Keyed, ids: Iterable[str], journey_id: str
                   ) -> tuple[Transition, ...]:
    """The ids' transitions merged by event time; each id's own stay in the order they were
    made (a late event's transition may carry an earlier time), the canonical id first on ties."""
    per_id = [history.get((journey_id, i), []) for i in ids]
    return tuple(heapq.merge(*per_id, key=lambda t: t.at))
