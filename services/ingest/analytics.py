"""The analytics queries: funnel, flows, stage population over time, contacts, transitions.

Every figure is read from what the stager wrote once, in the transaction that changed the stage
(docs/analytics.md): a period's contacts are the `contact_states` rows whose journey entry falls
in it, with what the stager derived from each state (the stages it reached, how many in order,
its first-touch channel), and their stage visits are the `transitions` rows of those contacts,
each carrying the seconds its contact spent in the stage it left. So the figures never disagree
with the stages, merges and erasures included, and no query reads the wide state rows except
the contact list's page.

SQLAlchemy Core for both databases; where PostgreSQL does better with its own SQL (percentiles
in the database, grouping sets), that statement sits beside the portable one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.ingest.funnel import (
    StageFigures,
    TimeInStage,
    stage_figures,
    time_in_stage,
)
from shared.db.read_model import SAMPLES
from shared.db.tables import Timestamp, contact_states, transitions
from shared.journey import ContactState, Journey, Touch

NONE, COHORT_WEEK, CHANNEL = "none", "cohort_week", "channel"
# Up to this many contacts in a period, time in stage reads every visit; above it, the share
# of sample buckets that holds about this many contacts' visits (docs/analytics.md).
EXACT_CONTACTS = 50_000
NO_CHANNEL = "(none)"  # the split key of contacts whose first touch had no channel


@dataclass(frozen=True)
class Period:
    """[start, end): a funnel's or flow's cohort (contacts that entered the journey then), a
    population's time axis, an export's transition times."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Funnel:
    stages: list[StageFigures]
    splits: list[tuple[str, list[StageFigures]]]  # (key, figures), by key


def _cohort(period: Period) -> sa.ColumnElement[bool]:
    column = contact_states.c.journey_entered_at
    return sa.and_(column >= period.start, column < period.end)


def _week_start(conn: AsyncConnection, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The Monday (UTC) of the week `column` falls in."""
    if conn.dialect.name == "postgresql":
        return sa.func.date_trunc("week", sa.func.timezone("UTC", column))
    # SQLite keeps UTC text; 'weekday 0' moves to the next Sunday (or stays), -6 days is Monday.
    return sa.func.date(column, "weekday 0", "-6 days")


def _split_key(conn: AsyncConnection, split: str, entered: sa.ColumnElement[Any],
               channel: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    if split == COHORT_WEEK:
        return _week_start(conn, entered)
    if split == CHANNEL:
        return sa.func.coalesce(channel, NO_CHANNEL)
    return sa.literal(NONE)


def split_name(split: str, key: Any) -> str:
    """The split's key as the API shows it: an ISO week ("2026-W47") or a channel."""
    if split != COHORT_WEEK:
        return str(key)
    day = key.date() if isinstance(key, datetime) else date.fromisoformat(str(key)[:10])
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


async def funnel(engine: AsyncEngine, journey: Journey, period: Period, mode: str,
                 split: str) -> Funnel:
    stages = journey.stage_ids
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # The two reads see one snapshot: a batch committing between them changes neither.
            await conn.execution_options(isolation_level="REPEATABLE READ")
        counted = await _progress(conn, journey.id, period, split)
        contacts = sum(n for by_key in counted.values() for n in by_key.values())
        samples = SAMPLES if contacts <= EXACT_CONTACTS else max(
            1, SAMPLES * EXACT_CONTACTS // contacts)
        times = await _times(conn, journey.id, period, split, samples)
    total: dict[tuple[int, int], int] = defaultdict(int)
    for by_key in counted.values():
        for progress, n in by_key.items():
            total[progress] += n
    return Funnel(
        stage_figures(stages, total, mode, times.get(None, {})),
        [(key, stage_figures(stages, counted[key], mode, times.get(key, {})))
         for key in sorted(counted)] if split != NONE else [],
    )


async def _progress(conn: AsyncConnection, journey_id: str, period: Period, split: str
                    ) -> dict[str, dict[tuple[int, int], int]]:
    """The period's contacts counted by split key and (reached bits, in_order)."""
    c = contact_states.c
    key = _split_key(conn, split, c.journey_entered_at, c.first_channel).label("key")
    rows = await conn.execute(
        sa.select(key, c.reached, c.in_order, sa.func.count())
        .where(c.journey_id == journey_id, _cohort(period))
        .group_by(key, c.reached, c.in_order)
    )
    counted: dict[str, dict[tuple[int, int], int]] = defaultdict(dict)
    for row in rows:
        counted[split_name(split, row[0])][(int(row[1]), int(row[2]))] = int(row[3])
    return counted


async def _times(conn: AsyncConnection, journey_id: str, period: Period, split: str,
                 samples: int) -> dict[str | None, dict[str, TimeInStage]]:
    """Time in stage of the period's contacts' completed visits, by split key (None: all of
    them), read from `samples` of the SAMPLES sample buckets."""
    t = transitions.c
    key = _split_key(conn, split, t.contact_entered_at, t.first_channel).label("key")
    where = (
        t.journey_id == journey_id,
        t.sample.in_(list(range(samples))),
        t.contact_entered_at >= period.start, t.contact_entered_at < period.end,
        t.from_stage.is_not(None), t.from_seconds.is_not(None),
    )
    share = samples / SAMPLES
    times: dict[str | None, dict[str, TimeInStage]] = defaultdict(dict)
    if conn.dialect.name == "postgresql":
        grouped = split != NONE
        statement = sa.select(
            key, t.from_stage,
            sa.func.percentile_cont(0.5).within_group(t.from_seconds),
            sa.func.percentile_cont(0.9).within_group(t.from_seconds),
            sa.func.count(),
            sa.func.grouping(key) if grouped else sa.literal(1),
        ).where(*where)
        statement = statement.group_by(
            sa.func.grouping_sets(sa.tuple_(t.from_stage), sa.tuple_(key, t.from_stage))
        ) if grouped else statement.group_by(key, t.from_stage)
        for row in await conn.execute(statement):
            whose = None if row[5] else split_name(split, row[0])
            times[whose][row[1]] = TimeInStage(float(row[2]), float(row[3]), int(row[4]),
                                               share)
        return times
    durations: dict[str | None, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in await conn.execute(sa.select(key, t.from_stage, t.from_seconds).where(*where)):
        durations[None][row[1]].append(float(row[2]))
        if split != NONE:
            durations[split_name(split, row[0])][row[1]].append(float(row[2]))
    for whose, by_stage in durations.items():
        for stage, seconds in by_stage.items():
            times[whose][stage] = time_in_stage(seconds, share)
    return times


# --- flows ---


@dataclass(frozen=True)
class Flows:
    still_in: dict[str, int]  # stage -> the period's contacts in it now
    links: list[tuple[str | None, str, int]]  # (from, to, moves); from None: entered the journey


async def flows(engine: AsyncEngine, journey: Journey, period: Period) -> Flows:
    c, t = contact_states.c, transitions.c
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execution_options(isolation_level="REPEATABLE READ")
        still = await conn.execute(
            sa.select(c.stage, sa.func.count())
            .where(c.journey_id == journey.id, _cohort(period), c.stage.is_not(None))
            .group_by(c.stage)
        )
        still_in = {stage: int(n) for stage, n in still}
        moves = await conn.execute(
            sa.select(t.from_stage, t.to_stage, sa.func.count())
            .where(t.journey_id == journey.id, t.contact_entered_at >= period.start,
                   t.contact_entered_at < period.end)
            .group_by(t.from_stage, t.to_stage)
        )
        links = [(from_stage, to_stage, int(n)) for from_stage, to_stage, n in moves]
    return Flows(still_in, sorted(links, key=lambda link: (link[0] or "", link[1])))


# --- population over time ---

MAX_POINTS = 1000


def points(period: Period, step: timedelta) -> list[datetime]:
    """The ends of each `step` from the period's start; the last one is the period's end."""
    ends = []
    at = period.start + step
    while at < period.end:
        ends.append(at)
        at += step
    ends.append(period.end)
    return ends


async def population(engine: AsyncEngine, journey: Journey, period: Period, step: timedelta
                     ) -> dict[str, list[tuple[datetime, int]]]:
    """Contacts in each stage at each point of `points(period, step)`, by stage (the journey's
    in order, then any other stage a contact is or was in).

    Today's contacts per stage, minus the moves made at or after each point: every counted
    contact's transitions lead to the stage its state row holds, so the two agree at any time.
    A contact counts when its entry is known, which its transitions repeat (docs/analytics.md).
    """
    ends = points(period, step)
    c, t = contact_states.c, transitions.c
    # Bucket k < last holds the moves in [ends[k], ends[k + 1]); the last, those at or after
    # the period's end. A point's population undoes the moves of its bucket and every later one.
    last = len(ends) - 1
    later: dict[str, list[int]] = defaultdict(lambda: [0] * len(ends))
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execution_options(isolation_level="REPEATABLE READ")
        now = {stage: int(n) for stage, n in await conn.execute(
            sa.select(c.stage, sa.func.count())
            .where(c.journey_id == journey.id, c.stage.is_not(None),
                   c.journey_entered_at.is_not(None))
            .group_by(c.stage))}
        bucket = sa.case((t.at >= period.end, last),
                         else_=_steps_since(conn, t.at, ends[0], step)).label("bucket")
        moves = await conn.execute(
            sa.select(t.from_stage, t.to_stage, bucket, sa.func.count())
            .where(t.journey_id == journey.id, t.at >= ends[0],
                   t.contact_entered_at.is_not(None))
            .group_by(t.from_stage, t.to_stage, bucket)
        )
        for from_stage, to_stage, index, n in moves:
            k = min(int(index), last)
            later[to_stage][k] += int(n)
            if from_stage is not None:
                later[from_stage][k] -= int(n)
    series: dict[str, list[tuple[datetime, int]]] = {}
    others = sorted((now.keys() | later.keys()) - set(journey.stage_ids))
    for stage in (*journey.stage_ids, *others):
        undone = 0
        counts = [0] * len(ends)
        for k in range(last, -1, -1):  # from the newest point back
            undone += later[stage][k] if stage in later else 0
            counts[k] = now.get(stage, 0) - undone
        series[stage] = list(zip(ends, counts, strict=True))
    return series


def _steps_since(conn: AsyncConnection, at: sa.ColumnElement[Any], first: datetime,
                 step: timedelta) -> sa.ColumnElement[Any]:
    """Whole `step`s from `first` to `at` (at ≥ first)."""
    if conn.dialect.name == "postgresql":
        # date_part gives a double (extract a numeric, computed twice as slowly); exact for the
        # microseconds of any span of this century.
        seconds = sa.func.date_part("epoch", at - sa.cast(sa.literal(first, Timestamp),
                                                           Timestamp))
        return sa.cast(sa.func.floor(seconds / step.total_seconds()), sa.Integer)
    # SQLite keeps UTC text: julianday() counts days (as a double: exact to well under a
    # millisecond at today's dates, so a move on a point's very instant falls after it).
    days = sa.func.julianday(at) - sa.func.julianday(sa.literal(first, Timestamp))
    return sa.cast(days / (step.total_seconds() / 86400), sa.Integer)


# --- contacts ---


@dataclass(frozen=True)
class ContactRow:
    contact: str
    stage: str
    entered_at: datetime | None
    first_touch: Touch | None
    traits: Mapping[str, Any]


async def contacts(engine: AsyncEngine, journey: Journey, *, stage: str | None,
                   entered_since: datetime | None, traits: Sequence[tuple[str, str]],
                   after: str | None, limit: int) -> tuple[list[ContactRow], str | None]:
    """A page of the journey's contacts by id, after `after`; and the id to continue after,
    if there are more."""
    c = contact_states.c
    async with engine.connect() as conn:
        where = [c.journey_id == journey.id, c.stage.is_not(None)]
        if stage is not None:
            where.append(c.stage == stage)
        if entered_since is not None:
            where.append(c.stage_entered_at >= entered_since)
        for name, value in traits:
            where.append(_trait(conn, name) == value)
        if after is not None:
            where.append(c.contact > after)
        rows = (await conn.execute(
            sa.select(c.contact, c.stage, c.stage_entered_at, c.state).where(*where)
            .order_by(c.contact).limit(limit + 1)
        )).all()
    page = [_contact_row(row) for row in rows[:limit]]
    return page, (page[-1].contact if len(rows) > limit else None)


def _contact_row(row: Any) -> ContactRow:
    state = ContactState.from_stored(row.state)
    return ContactRow(row.contact, row.stage, row.stage_entered_at, state.first_touch,
                      state.traits)


def _trait(conn: AsyncConnection, name: str) -> sa.ColumnElement[Any]:
    """The contact's trait `name` as text (a number as its digits, true/false as words)."""
    if conn.dialect.name == "postgresql":
        text: sa.ColumnElement[Any] = contact_states.c.state["traits"][name].as_string()
        return text
    # json_extract gives SQLite's own values (1/0 for true/false); ->> would too. Compare the
    # JSON text of the value instead, unquoting strings.
    value = sa.func.json_extract(contact_states.c.state, sa.literal(_json_path(name)))
    kind = sa.func.json_type(contact_states.c.state, sa.literal(_json_path(name)))
    return sa.case((kind == "true", "true"), (kind == "false", "false"),
                   else_=sa.cast(value, sa.Text))


def _json_path(name: str) -> str:
    return "$.traits." + json.dumps(name)


# --- transitions export ---

EXPORT_PAGE = 5000
EXPORT_COLUMNS = ("transition_id", "contact", "from", "to", "at", "cause", "rule", "reason")


async def transition_pages(engine: AsyncEngine, journey_id: str, period: Period
                           ) -> AsyncIterator[list[dict[str, Any]]]:
    """The journey's transitions made in the period, by time then id, a page at a time; each
    page is a short read of its own, so a long download holds no connection (in the embedded
    mode there is one, which the stager needs)."""
    t = transitions.c
    after: tuple[datetime, str] | None = None
    while True:
        where = [t.journey_id == journey_id, t.at >= period.start, t.at < period.end]
        if after is not None:
            where.append(sa.tuple_(t.at, t.transition_id) > sa.tuple_(
                sa.literal(after[0], Timestamp), sa.literal(after[1])))
        async with engine.connect() as conn:
            rows = (await conn.execute(
                sa.select(t.transition_id, t.contact, t.from_stage, t.to_stage, t.at, t.cause,
                          t.rule_id, t.reason)
                .where(*where).order_by(t.at, t.transition_id).limit(EXPORT_PAGE)
            )).all()
        if not rows:
            return
        yield [dict(zip(EXPORT_COLUMNS, (r.transition_id, r.contact, r.from_stage, r.to_stage,
                                         r.at.astimezone(UTC).isoformat(), r.cause, r.rule_id,
                                         r.reason), strict=True))
               for r in rows]
        if len(rows) < EXPORT_PAGE:
            return
        after = (rows[-1].at, rows[-1].transition_id)

