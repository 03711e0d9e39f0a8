"""Analytics over a million contacts and five million transitions: how long each query takes.

Run: `.venv/bin/python -m bench.funnel [--contacts N] [--moves M]` (needs `make infra`).
Generated histories (bench/funnel_data.py) of the `b2b-cto` journey are loaded with COPY into a
scratch database; then each query of the analytics API (services/ingest/analytics.py, the code
the API runs) is timed: once to warm the cache, then REPEAT times, printing the median. The
funnel's target is under a second with every contact in the period (docs/analytics.md).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import scratch_database
from bench.figures import Figure, count
from bench.funnel_data import END, SPAN, load
from services.ingest import analytics
from services.ingest.analytics import Period
from services.ingest.funnel import ANY_ORDER, IN_ORDER
from shared.db.engine import make_engine
from shared.journey import load_journeys

ROOT = Path(__file__).resolve().parents[1]
JOURNEY = "b2b-cto"
REPEAT = 3
TARGET_MS = 1000.0


async def timed(label: str, run: Callable[[], Awaitable[Any]], target: float | None = None
                ) -> float:
    await run()  # warm
    took = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        await run()
        took.append((time.perf_counter() - started) * 1000)
    median = statistics.median(took)
    verdict = "" if target is None else ("  ok" if median < target else "  OVER TARGET")
    print(f"  {label:<52} {median:>8.0f} ms{verdict}", flush=True)
    return median


async def export_rate(engine: Any, period: Period, rows: int) -> None:
    started = time.perf_counter()
    first = None
    seen = 0
    async for page in analytics.transition_pages(engine, JOURNEY, period):
        if first is None:
            first = time.perf_counter() - started
        seen += len(page)
        if seen >= rows:
            break
    took = time.perf_counter() - started
    print(f"  {'transitions export, first ' + format(seen, ',') + ' rows':<52} "
          f"{took * 1000:>8.0f} ms  (first page {(first or 0) * 1000:.0f} ms, "
          f"{seen / took:,.0f} rows/s)", flush=True)


async def figures(contacts: int = 1_000_000, moves: float = 4.0) -> list[Figure]:
    """Every query, printed as it is timed; the figure is the slowest funnel over every contact
    against the funnel's target."""
    journey = {j.id: j for j in load_journeys(ROOT / "journeys")}[JOURNEY]
    funnels: list[float] = []
    async with scratch_database("bench_funnel") as db:
        conn = await asyncpg.connect(host=db.host, port=db.port, user=db.user,
                                     password=db.password, database=db.db)
        started = time.perf_counter()
        try:
            written = await load(conn, journey.id, journey.stage_ids, contacts, moves)
        finally:
            await conn.close()
        print(f"analytics benchmark: {contacts:,} contacts, {written:,} transitions of "
              f"{journey.id} ({len(journey.stage_ids)} stages), entries over {SPAN.days} days; "
              f"generated and loaded in {time.perf_counter() - started:.0f} s", flush=True)
        engine = make_engine(db)
        everyone = Period(END - SPAN, END + timedelta(seconds=1))
        month = Period(END - timedelta(days=30), END + timedelta(seconds=1))
        try:
            for name, period in (("all contacts", everyone), ("last 30 days", month)):
                print(f" {name}:")
                for mode in (IN_ORDER, ANY_ORDER):
                    for split in (analytics.NONE, analytics.COHORT_WEEK, analytics.CHANNEL):
                        took = await timed(
                            f"funnel {mode}, split {split}",
                            partial(analytics.funnel, engine, journey, period, mode, split),
                            TARGET_MS)
                        if period is everyone:
                            funnels.append(took)
                await timed("flows", partial(analytics.flows, engine, journey, period))
            print(" others:")
            await timed("population, daily over the last 30 days", lambda: analytics.population(
                engine, journey, month, timedelta(days=1)))
            await timed("population, weekly over all 120 days", lambda: analytics.population(
                engine, journey, everyone, timedelta(weeks=1)))
            await timed("contacts, a page of 100 in one stage", lambda: analytics.contacts(
                engine, journey, stage="selection", entered_since=None, traits=[],
                after="bench-0500000", limit=100))
            await timed("contacts, a page of 100 by trait", lambda: analytics.contacts(
                engine, journey, stage=None, entered_since=None, traits=[("plan", "pro")],
                after=None, limit=100))
            await export_rate(engine, month, 100_000)
        finally:
            await engine.dispose()
    slowest = max(funnels)
    return [Figure(f"funnel over {count(contacts)} contacts, slowest of {len(funnels)}",
                   slowest, "ms", aim=f"< {TARGET_MS:,.0f} ms", met=slowest < TARGET_MS,
                   details={"contacts": contacts, "transitions": written,
                            "funnel_medians_ms": funnels})]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--moves", type=float, default=4.0,
                        help="mean moves per contact after its entry")
    args = parser.parse_args()
    await figures(args.contacts, args.moves)


if __name__ == "__main__":
    asyncio.run(main())
