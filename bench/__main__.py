"""`make bench`: every benchmark in turn, then one table of their figures and a JSON record.

Each module prints its own lines as it measures (as `python -m bench.<name>` does) and returns
its figures (bench/figures.py); a module that fails is reported in the table as not measured,
and the others still run. The table goes to stdout, the record (date, commit, machine, every
figure with its details) to bench/results/latest.json.

Run: `.venv/bin/python -m bench [--only stager,ingest] [--scale-events N] [--funnel]
[--output PATH]`. The analytics benchmark (bench.funnel: loading a million contacts takes
6-7 minutes here) runs only with --funnel, to keep `make bench` near 15 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import actions, embedded, funnel, ingest, pipeline, stager
from bench.figures import RESULTS, Figure, commit, failed, machine, record, table, write_record

# What `make bench` runs with, chosen to keep it near 15 minutes on the 2-core machine
# (docs/performance.md, "How long it takes").
SCALE_EVENTS = 1_000_000  # bench.stager's run with as many distinct contacts
PIPELINE_RATE = 1_000
PIPELINE_SECONDS = 60.0


Measure = Callable[[], Awaitable[list[Figure]]]


def benchmarks(args: argparse.Namespace) -> dict[str, Measure]:
    chosen: dict[str, Measure] = {
        "ingest": lambda: ingest.figures(),
        "stager": lambda: stager.figures(scale_events=args.scale_events,
                                         scale_contacts=args.scale_events),
        "actions": lambda: actions.figures(),
        "pipeline": lambda: pipeline.figures(PIPELINE_RATE, args.pipeline_seconds),
        "embedded": lambda: embedded.figures(),
    }
    if args.funnel:
        chosen["funnel"] = lambda: funnel.figures()
    return chosen


async def run(args: argparse.Namespace) -> list[Figure]:
    found: list[Figure] = []
    for name, measure in benchmarks(args).items():
        if args.only and name not in args.only:
            continue
        print(f"\n== bench.{name}", flush=True)
        started = time.perf_counter()
        try:
            found += await measure()
        except Exception as exc:
            traceback.print_exc()
            found.append(failed(f"bench.{name}", "", f"{type(exc).__name__}: {exc}"[:200]))
        print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=lambda text: set(text.split(",")), default=set(),
                        help="comma-separated: ingest, stager, actions, pipeline, embedded, "
                             "funnel (with --funnel)")
    parser.add_argument("--scale-events", type=int, default=SCALE_EVENTS,
                        help="events (each its own contact) of the stager's many-contacts run; "
                             "0 skips it")
    parser.add_argument("--pipeline-seconds", type=float, default=PIPELINE_SECONDS)
    parser.add_argument("--funnel", action="store_true",
                        help="also the analytics benchmark (about 7 more minutes)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # fresh topics' leader elections
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    host = machine()  # the load average before the benchmarks add theirs
    found = asyncio.run(run(args))
    seconds = time.perf_counter() - started
    print(f"\n== figures ({seconds / 60:.1f} min, {host['cores']} cores, load average "
          f"{host['load_average'][0]} at the start)\n")
    print(table(found))
    options = {"only": sorted(args.only), "funnel": args.funnel,
               "scale_events": args.scale_events,
               "pipeline_rate": PIPELINE_RATE, "pipeline_seconds": args.pipeline_seconds}
    path = write_record(record(found, started_at, seconds, host, commit(), options), args.output)
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
