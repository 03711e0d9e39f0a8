"""Embedded mode end to end: events posted to `polku dev` until the stager has applied them all.

Run: `.venv/bin/python -m bench.embedded [--events N] [--contacts K] [--journeys DIR]` (needs no
Kafka and no PostgreSQL). A real `polku dev` process starts on a fresh SQLite file with the
shipped journeys (webhooks go to its built-in sink on :8099, so deliveries are part of the
work). Eight keep-alive connections post the events as /v1/batch requests of 100, as fast as
the process acknowledges them; the clock stops when `polku_stager_events_total{applied}` has
counted every event: each was acknowledged (committed to the embedded log), consumed, deduped,
run through every journey and committed with its new state and transitions.

Baseline, in the same run: the same encoded events appended straight to a SQLite table with
aiosqlite, 100 rows per transaction with the embedded mode's settings (WAL, synchronous=FULL),
then read back in offset order. That is the floor the file imposes on the log alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import time
from pathlib import Path

import aiosqlite
import httpx

from bench.common import KeepAliveClient, basic_auth, rate
from bench.figures import Figure, at_least
from bench.ingest import cpu_seconds, make_events
from shared.settings import DatabaseSettings, KafkaSettings
from tests.processes import ServiceProcess, service_env

ROOT = Path(__file__).resolve().parents[1]
BATCH = 100
CONNECTIONS = 8
AIM_RATE = 6_000.0  # events/s end to end (issue 14, docs/performance.md)
APPLIED = re.compile(rb'^polku_stager_events_total\{outcome="applied"\} ([0-9.e+]+)$', re.M)


async def applied(url: str) -> int:
    async with httpx.AsyncClient(timeout=10) as http:
        found = APPLIED.search((await http.get(url + "/metrics")).content)
    return int(float(found.group(1))) if found else 0


async def bench_polku(bodies: list[bytes], events: int, journeys: Path, data_dir: Path
                      ) -> tuple[float, float, float]:
    """(seconds until all acknowledged, seconds until all applied, server CPU seconds)."""
    env = service_env(KafkaSettings(), DatabaseSettings(), POLKU_DEV_DATA_DIR=str(data_dir),
                      POLKU_JOURNEYS_DIR=str(journeys), POLKU_LOG_LEVEL="warning")
    polku = ServiceProcess("dev", env).start()
    try:
        polku.wait_status("/readyz", 200, 60)
        write_key = (data_dir / "write-key").read_text().strip()
        assert polku.process is not None
        cpu_before = cpu_seconds(polku.process.pid)
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        for body in bodies:
            queue.put_nowait(body)
        async with KeepAliveClient(polku.url, basic_auth(write_key), CONNECTIONS) as client:

            async def worker() -> None:
                while not queue.empty():
                    body = queue.get_nowait()
                    status, answer = await client.post("/v1/batch", body)
                    assert status == 200, answer[:300]

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
            acknowledged = time.perf_counter() - started
        while await applied(polku.url) < events:  # noqa: ASYNC110 (polling the metric)
            await asyncio.sleep(0.05)
        done = time.perf_counter() - started
        return acknowledged, done, cpu_seconds(polku.process.pid) - cpu_before
    finally:
        polku.kill()


async def bench_raw_sqlite(records: list[tuple[bytes, bytes]], path: Path) -> tuple[float, float]:
    """(seconds to append in transactions of BATCH, seconds to read everything back)."""
    async with aiosqlite.connect(path) as db:
        for pragma in ("journal_mode=WAL", "synchronous=FULL"):
            await db.execute(f"PRAGMA {pragma}")
        await db.execute("create table log (partition int, offset int, key blob, value blob, "
                         "primary key (partition, offset))")
        await db.commit()
        started = time.perf_counter()
        for i in range(0, len(records), BATCH):
            await db.executemany("insert into log values (0, ?, ?, ?)",
                                 [(i + j, k, v) for j, (k, v) in enumerate(records[i:i + BATCH])])
            await db.commit()
        appended = time.perf_counter() - started
        started = time.perf_counter()
        offset, read = 0, 0
        while read < len(records):
            async with db.execute("select offset, key, value from log where partition = 0 and "
                                  "offset >= ? order by offset limit 2000", (offset,)) as rows:
                fetched = list(await rows.fetchall())
            read += len(fetched)
            offset = fetched[-1][0] + 1
        return appended, time.perf_counter() - started


async def figures(events: int = 50_000, contacts: int = 10_000,
                  journeys: Path = ROOT / "journeys") -> list[Figure]:
    """The run, printed as it goes; the figure of issue 14 is the end-to-end rate."""
    items = make_events(events, contacts)
    bodies = [json.dumps({"batch": items[i:i + BATCH]}).encode()
              for i in range(0, events, BATCH)]
    records = [(item["userId"].encode(), json.dumps(item).encode()) for item in items]
    with tempfile.TemporaryDirectory(prefix="polku-bench-embedded-") as scratch:
        append_s, read_s = await bench_raw_sqlite(records, Path(scratch) / "raw.db")
        acknowledged_s, applied_s, cpu_s = await bench_polku(
            bodies, events, journeys, Path(scratch) / "dev")
    print(f"{events:,} events, {contacts:,} contacts, journeys from {journeys}, batches of "
          f"{BATCH} over {CONNECTIONS} connections")
    print(f"  raw aiosqlite append (WAL, synchronous=FULL, {BATCH}/transaction): "
          f"{rate(events, append_s)}; read back {rate(events, read_s)}")
    print(f"  polku dev, acknowledged (HTTP 200, in the log):  {rate(events, acknowledged_s)}")
    print(f"  polku dev, end to end (applied by the stager):   {rate(events, applied_s)};"
          f" server CPU {cpu_s / events * 1e6:.0f} µs/event")
    end_to_end = events / applied_s
    return [Figure("embedded mode, end to end", end_to_end, "ev/s", events / append_s,
                   f"raw aiosqlite append, {BATCH}/transaction", aim=f">= {AIM_RATE:,.0f} ev/s",
                   met=at_least(end_to_end, AIM_RATE),
                   details={"events": events, "contacts": contacts,
                            "acknowledged_rate": events / acknowledged_s,
                            "server_cpu_us": cpu_s / events * 1e6,
                            "raw_read_rate": events / read_s})]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--journeys", type=Path, default=Path("journeys"))
    args = parser.parse_args()
    asyncio.run(figures(args.events, args.contacts, args.journeys))
