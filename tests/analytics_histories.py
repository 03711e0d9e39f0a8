"""Small crafted journey histories for the analytics tests, and the stores they go through.

Every history is written by the real stager store (`apply_batch`), on PostgreSQL or on SQLite,
so the figures are computed from exactly what the stager writes. The journey
(tests/analytics_journeys/funnel.yaml) has stages a, b, c, d and an event per stage that moves a
contact there from anywhere. The expected figures are worked out by hand in the tests.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.stager.processing import Record
from services.stager.store import Identity, Partition, apply_batch
from shared.db.engine import make_engine, sqlite_engine
from shared.db.migrate import upgrade
from shared.journey import load_journeys
from shared.settings import DatabaseSettings
from shared.wire import Topics
from tests.messages import iso

JOURNEYS_DIR = Path(__file__).parent / "analytics_journeys"
JOURNEY = load_journeys(JOURNEYS_DIR)[0]
TOPICS = Topics(touchpoints="touchpoints", transitions="transitions", dead_letters="dead")
WHERE = Partition("analytics-test", TOPICS.touchpoints, 0)
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)  # a Monday: ISO week 2026-W45
HOUR = timedelta(hours=1)
_ids = itertools.count()


def at(hours: float) -> datetime:
    return T0 + hours * HOUR


def event(contact: str, hours: float, name: str, *, medium: str | None = None,
          anonymous_id: str | None = None, user: bool = True, type: str = "track",
          traits: dict[str, Any] | None = None) -> dict[str, Any]:
    """A touchpoint message as ingest writes it (`medium`: the campaign's, for the channel)."""
    return {
        "v": 1, "type": type, "messageId": f"m-{next(_ids)}", "contact": contact,
        "userId": contact if user else None, "anonymousId": anonymous_id, "previousId": None,
        "groupId": None, "event": name if type == "track" else None, "name": None,
        "properties": {}, "traits": traits or {},
        "context": {"campaign": {"medium": medium}} if medium else {},
        "timestamp": iso(at(hours)), "originalTimestamp": iso(at(hours)), "sentAt": None,
        "receivedAt": iso(at(hours)), "sourceId": "test",
    }


def path(contact: str, *moves: tuple[float, str], medium: str | None = None
         ) -> list[dict[str, Any]]:
    """`contact` moving to each stage at each hour: (0, "a"), (2, "b"), ..."""
    return [event(contact, hours, f"Go {stage.upper()}", medium=medium if i == 0 else None)
            for i, (hours, stage) in enumerate(moves)]


# The histories the funnel tests count (hours from T0; see test_analytics_figures.py).
CRAFTED = {
    "alice": path("alice", (0, "a"), (2, "b"), (5, "c"), (9, "d"), medium="cpc"),  # straight
    "bob": path("bob", (0, "a"), (1, "c"), (4, "d")),  # skips b
    "carol": path("carol", (0, "a"), (1, "b"), (3, "a"), (4, "b"), (10, "c")),  # back, again
    "dave": path("dave", (0, "c"), (2, "d")),  # lands in c: skips a and b
    "erin": path("erin", (0, "a")),  # still in a
    "frank": path("frank", (0, "a"), (1, "c"), (2, "b"), (4, "c")),  # c before b, then b, c
    "gina": path("gina", (7 * 24, "a"), (7 * 24 + 1, "b")),  # enters a week later
}


async def apply(engine: AsyncEngine, messages: list[dict[str, Any]], first_offset: int = 0
                ) -> int:
    """Apply `messages` in order as one partition's batch; the next offset."""
    records = [Record(first_offset + i, m["contact"].encode(), json.dumps(m).encode())
               for i, m in enumerate(messages)]
    await apply_batch(engine, WHERE, records, [JOURNEY], TOPICS, Identity(partitions=1))
    return first_offset + len(records)


def interleaved(histories: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every history's messages in event-time order, as they would arrive."""
    return sorted((m for messages in histories.values() for m in messages),
                  key=lambda m: m["timestamp"])


@asynccontextmanager
async def sqlite_store(directory: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{directory / f'analytics-{uuid.uuid4().hex[:6]}.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = sqlite_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def postgres_store(settings: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(settings)
    try:
        yield engine
    finally:
        await engine.dispose()


def hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 6)


def figures(stages: list[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
    """(stage, reached, to next, from first, dropped, median h, p90 h, visits) per stage."""
    for s in stages:
        time = s["time_in_stage"]
        yield (s["stage"], s["reached"], _round(s["conversion_to_next"]),
               _round(s["conversion_from_first"]), s["dropped"], hours(time["median_s"]),
               hours(time["p90_s"]), time["visits"])


def _round(share: float | None) -> float | None:
    return None if share is None else round(share, 6)
