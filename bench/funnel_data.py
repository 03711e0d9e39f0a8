"""Generated journey histories for the analytics benchmark, loaded with COPY.

Each contact enters the journey once, then moves a few times: mostly one stage on, sometimes two
(a skip), sometimes one back. Its rows are what the stager would write for that path: the
transitions with the seconds spent in the stage they leave, and one `contact_states` row whose
analytics columns come from the same `progress` the stager calls (shared/db/read_model.py).
Rows are written in PostgreSQL's COPY text format, a chunk of contacts at a time, into tables
whose secondary indexes are dropped for the load and built again afterwards (as a restore
would), then vacuumed and analysed, as autovacuum leaves an insert-mostly table.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex

from shared.db.read_model import progress, sample_of
from shared.db.tables import contact_states, transitions

END = datetime(2026, 11, 30, tzinfo=UTC)  # the newest entry; the benchmark's "now"
SPAN = timedelta(days=120)  # entries are spread over this long before END
CHANNELS = (("search", 30), ("paid_search", 20), ("social", 15), ("email", 12), ("direct", 10),
            ("referral", 8), ("display", 5))
CHUNK = 50_000  # contacts per COPY

STATE_COLUMNS = ("contact", "journey_id", "journey_version", "stage", "stage_entered_at",
                 "state", "timer_due_at", "partition", "journey_entered_at", "first_channel",
                 "reached", "in_order")
TRANSITION_COLUMNS = ("transition_id", "journey_id", "journey_version", "contact",
                      "from_stage", "to_stage", "at", "cause", "rule_id", "reason", "seq",
                      "from_seconds", "contact_entered_at", "first_channel", "sample")


def _path(rng: random.Random, last: int, moves: int) -> list[int]:
    """Stage indexes visited: an entry (mostly the first stage) and `moves` moves."""
    stage = rng.choices((0, 1, 2), (85, 10, 5))[0]
    path = [stage]
    for _ in range(moves):
        roll = rng.random()
        step = 1 if roll < 0.62 else 2 if roll < 0.74 else -1
        nxt = stage + step
        if nxt > last:
            nxt = stage - 1
        if nxt < 0:
            nxt = 1
        path.append(nxt)
        stage = nxt
    return path


def _text(value: object) -> str:
    """One field in COPY's text format (the generated values hold no tab, newline or \\)."""
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _line(values: Sequence[object]) -> str:
    return "\t".join(_text(v) for v in values) + "\n"


def chunks(journey_id: str, stages: Sequence[str], contacts: int, moves_mean: float,
           seed: int = 13) -> Iterator[tuple[bytes, bytes, int]]:
    """(contact_states COPY text, transitions COPY text, transitions) per CHUNK contacts."""
    rng = random.Random(seed)
    names = [c for c, _ in CHANNELS]
    weights = [w for _, w in CHANNELS]
    last = len(stages) - 1
    top = max(0, round(moves_mean * 2))
    serial = 0
    for first in range(0, contacts, CHUNK):
        state_lines: list[str] = []
        transition_lines: list[str] = []
        count = 0
        for n in range(first, min(first + CHUNK, contacts)):
            contact = f"bench-{n:07d}"
            entered = END - SPAN * rng.random()
            channel = rng.choices(names, weights)[0]
            path = _path(rng, last, rng.randint(0, top))
            at = entered
            previous: int | None = None
            reached: list[str] = []
            for seq, index in enumerate(path, start=1):
                seconds = None
                if previous is not None:
                    seconds = rng.expovariate(1 / (86400 * (2 + previous)))
                    at = at + timedelta(seconds=seconds)
                stage = stages[index]
                if stage not in reached:
                    reached.append(stage)
                serial += 1
                transition_id = f"{serial:032x}"
                transition_lines.append(_line((
                    transition_id, journey_id, 1, contact,
                    stages[previous] if previous is not None else None, stage, at,
                    f"m-{serial}", None if previous is None else "rule",
                    "entered the journey" if previous is None else "a rule fired", seq,
                    seconds, entered, channel, sample_of(transition_id))))
                previous = index
            count += len(path)
            mask, in_order = progress(reached, stages)
            state = {"v": 1, "journey_id": journey_id, "journey_version": 1,
                     "contact": contact, "stage": stages[path[-1]],
                     "stage_entered_at": at.isoformat(), "last_event_at": at.isoformat(),
                     "first_touch": {"channel": channel, "at": entered.isoformat()},
                     "last_touch": {"channel": "direct", "at": at.isoformat()},
                     "traits": {"email": f"{contact}@example.com", "plan": "pro"},
                     "trait_times": {}, "counts": {}, "scores": {}, "seen": [],
                     "sequence": len(path), "observed": len(path) * 2,
                     "journey_entered_at": entered.isoformat(), "reached": reached}
            state_lines.append(_line((
                contact, journey_id, 1, stages[path[-1]], at,
                json.dumps(state, separators=(",", ":")), None, n % 6, entered, channel,
                mask, in_order)))
        yield "".join(state_lines).encode(), "".join(transition_lines).encode(), count


def _indexes(table: sa.Table) -> list[sa.Index]:
    return sorted(table.indexes, key=lambda index: str(index.name))


async def load(conn: asyncpg.Connection, journey_id: str, stages: Sequence[str],
               contacts: int, moves_mean: float) -> int:
    """Fill both tables (empty, migrated) with generated histories; the transitions written."""
    for table in (contact_states, transitions):
        for index in _indexes(table):
            await conn.execute(f"drop index {index.name}")
    written = 0
    for states, moves, count in chunks(journey_id, stages, contacts, moves_mean):
        await conn.copy_to_table("contact_states", source=io.BytesIO(states),
                                 columns=list(STATE_COLUMNS), format="text")
        await conn.copy_to_table("transitions", source=io.BytesIO(moves),
                                 columns=list(TRANSITION_COLUMNS), format="text")
        written += count
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    for table in (contact_states, transitions):
        for index in _indexes(table):
            await conn.execute(str(CreateIndex(index).compile(dialect=dialect)))
        await conn.execute(f"vacuum analyze {table.name}")
    return written
