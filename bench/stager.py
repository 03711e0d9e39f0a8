"""Stager throughput with 100k distinct contacts, beside raw aiokafka/asyncpg baselines and a
Quix Streams peer running the same engine.

Run: `.venv/bin/python -m bench.stager [--events N] [--contacts N] [--no-peer]` (needs
`make infra`; the peer needs `make bench-peer`). The same pre-produced topic is read four
times, each by a fresh consumer group:
  1. raw aiokafka: consume + json.loads (the broker's floor);
  2. raw aiokafka + asyncpg: the same, plus one transaction per partition batch that writes a
     dedupe row per event and the offset (the database floor for exactly-once bookkeeping);
  3. the stager itself: parse, dedupe, engine over every shipped journey, state upsert,
     transitions + outbox, offset, and publishing transitions back to Kafka. It runs in a
     process of its own (bench/stager_process.py), so its memory is the stager's alone: RSS
     is sampled while it runs (start and end of the timed part, and the process's peak,
     VmHWM);
  4. the peer: the same engine, journeys, decoding and transition records inside Quix Streams
     (bench/quix_peer.py, in its own environment), exactly-once, state in RocksDB.
Polku's clock runs from its first committed batch to its last, counting the events committed
after the first; the peer's from its first committed checkpoint to its last, read the same way
from outside (its group's committed offsets), so both rates are events committed per second.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from bench.common import memory_mb, rate, scratch_database, scratch_topics
from bench.figures import Figure, all_met, at_least, at_most, count, failed
from services.stager import metrics
from services.stager.app import kafka_consumer
from services.stager.consumer import Stager
from services.stager.settings import StagerSettings
from services.stager.worker import STAGER_GC_MIDDLE, STAGER_GC_YOUNG
from shared.clock import SystemClock
from shared.db.engine import make_engine
from shared.journey import Journey, load_journeys
from shared.kafka import KafkaWriter, durable_producer, ensure_topics
from shared.runtime import collect_less_often
from shared.settings import DatabaseSettings, KafkaSettings
from tests.messages import touchpoint

ROOT = Path(__file__).resolve().parents[1]
# The peer's environment (`make bench-peer`): quixstreams 3.28 cannot share the project's.
PEER_PYTHON = ROOT / ".venv-peer" / "bin" / "python"
PEER_NAME = "Quix Streams"

# The aims of issue 14 (docs/performance.md).
AIM_RATE = 12_000.0
AIM_OVER_PEER = 1.5
AIM_SCALE_RATIO = 0.8  # with many more contacts: within 20 % of the rate with 100k
AIM_RSS_MB = 300.0
# RSS "flat": at most 10 % more at the end of the timed run than when a tenth of it was done
# (past the first batches, whose records all arrive at once).
FLAT_GROWTH = 0.10

# A mix drawn from the seeds' touchpoints: mostly content, some intent, few purchases.
TRAFFIC: list[tuple[int, dict[str, Any]]] = [
    (40, {"type": "page", "name": "Blog", "context": {"campaign": {"medium": "organic"}}}),
    (15, {"type": "page", "name": "Pricing"}),
    (10, {"type": "track", "event": "Ad Clicked", "context": {"campaign": {"medium": "cpc"}}}),
    (8, {"type": "track", "event": "Guide Downloaded"}),
    (6, {"type": "track", "event": "Webinar Registered"}),
    (5, {"type": "track", "event": "Demo Requested"}),
    (4, {"type": "track", "event": "Quote Requested"}),
    (3, {"type": "track", "event": "Order Completed", "properties": {"revenue": 1200}}),
    (3, {"type": "track", "event": "Support Call"}),
    (6, {"type": "identify", "traits": {"persona": "b2b-buyer"}}),
]


def iter_traffic(n_events: int, n_contacts: int) -> Iterator[dict[str, object]]:
    """The benchmark's touchpoints, one at a time (a million would not fit comfortably).

    A second apart and ending about now, as live traffic does: no contact has been quiet for
    the journeys' inactivity timers (14 days at the least) by the time the stager catches up,
    so the run measures touchpoints, not a sweep of timers that months-old traffic would
    trigger by the wall clock (which the peer, having no timers, would never do).
    """
    rng = random.Random(7)
    weights = [w for w, _ in TRAFFIC]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=n_events)
    for i in range(n_events):
        contact = f"bench-{i % n_contacts}"
        shape = dict(rng.choices(TRAFFIC, weights)[0][1])
        at = start + timedelta(seconds=i)
        yield touchpoint(contact, at, **shape)


def traffic(n_events: int, n_contacts: int) -> list[dict[str, object]]:
    return list(iter_traffic(n_events, n_contacts))


async def produce(kafka: KafkaSettings, messages: Iterable[dict[str, object]]) -> float:
    await ensure_topics(kafka, [kafka.touchpoints_topic])
    producer = durable_producer(kafka, linger_ms=20)
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for m in messages:
            pending.append(await producer.send(kafka.touchpoints_topic, json.dumps(m).encode(),
                                               key=str(m["contact"]).encode()))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def baseline(kafka: KafkaSettings, n: int, db: DatabaseSettings | None) -> float:
    consumer = AIOKafkaConsumer(
        kafka.touchpoints_topic, bootstrap_servers=kafka.bootstrap_servers,
        group_id=f"baseline-{uuid.uuid4().hex[:6]}", auto_offset_reset="earliest",
        enable_auto_commit=False, max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    pool = None
    if db is not None:
        pool = await asyncpg.create_pool(host=db.host, port=db.port, user=db.user,
                                         password=db.password, database=db.db)
    await consumer.start()
    seen = 0
    started = None
    try:
        while seen < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            if started is None and batches:
                started = time.perf_counter()
            for tp, records in batches.items():
                rows = []
                for r in records:
                    m = json.loads(r.value)
                    rows.append((m["contact"], m["messageId"]))
                if pool is not None:
                    async with pool.acquire() as conn, conn.transaction():
                        await conn.executemany(
                            "insert into processed_messages (contact, message_id) values ($1, $2)"
                            " on conflict do nothing", rows)
                        await conn.execute(
                            "insert into consumer_offsets (group_id, topic, partition, next_offset)"
                            " values ('baseline', $1, $2, $3) on conflict (group_id, topic,"
                            " partition) do update set next_offset = excluded.next_offset",
                            tp.topic, tp.partition, records[-1].offset + 1)
                seen += len(records)
    finally:
        await consumer.stop()
        if pool is not None:
            await pool.close()
    assert started is not None
    return time.perf_counter() - started


# -- Polku's stager -----------------------------------------------------------------------------

RSS_EVERY_S = 1.0


@dataclass(frozen=True)
class StagerRun:
    """What one stager run did, and the memory of the process it ran in (MiB)."""

    seconds: float  # from the first committed batch to the last
    events: int  # applied in that time (the first batches' are not: they came before the clock)
    transitions: float
    rss_start_mb: float  # when a tenth of the timed events had been applied
    rss_end_mb: float  # when the last event was applied
    rss_peak_mb: float  # the process's peak over its whole life (VmHWM)
    rss_samples: list[tuple[float, int, float]] = field(default_factory=list)  # (s, events, MiB)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def flat(self) -> bool:
        return self.rss_end_mb <= self.rss_start_mb * (1 + FLAT_GROWTH)


async def run_stager(
    kafka: KafkaSettings, db: DatabaseSettings, n: int, journeys: list[Journey]
) -> StagerRun:
    """The stager over the topic until it has applied `n` events, timed from its first
    committed batch to its last, with this process's RSS sampled every RSS_EVERY_S."""
    engine = make_engine(db, pre_ping=False)  # as services/stager/app.py
    producer = durable_producer(kafka)
    await producer.start()
    await ensure_topics(kafka, [kafka.transitions_topic, kafka.dead_letter_topic])
    settings = StagerSettings(group_id=f"bench-{uuid.uuid4().hex[:6]}",
                              stage_gauge_interval_s=3600)
    stager = Stager(kafka_consumer(kafka, settings), KafkaWriter(producer), engine, settings,
                    kafka.topics, journeys, SystemClock())
    thresholds = gc.get_threshold()
    collect_less_often(STAGER_GC_YOUNG, STAGER_GC_MIDDLE, freeze=True)  # as `polku stager`
    counter = metrics.EVENTS.labels("applied")
    before = counter._value.get()
    task = asyncio.create_task(stager.run())
    started = None
    first = 0
    rss_start = None
    samples: list[tuple[float, int, float]] = []
    next_sample = 0.0
    try:
        while True:
            done = counter._value.get() - before
            now = time.perf_counter()
            if started is None and done > 0:
                started, first = now, int(done)
            if rss_start is None and started is not None and done - first >= (n - first) / 10:
                rss_start = memory_mb()[0]
            if started is not None and now >= next_sample:
                next_sample = now + RSS_EVERY_S
                samples.append((round(now - started, 2), int(done), round(memory_mb()[0], 1)))
            if done >= n:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - (started or time.perf_counter())
        rss_end, rss_peak = memory_mb()
        transitions = sum(
            s.value for m in metrics.TRANSITIONS.collect() for s in m.samples
            if s.name.endswith("_total")
        )
        return StagerRun(elapsed, n - first, transitions, rss_start or rss_end, rss_end,
                         rss_peak, samples)
    finally:
        stager.stop()
        await task
        await producer.stop()
        await engine.dispose()
        gc.unfreeze()  # in case this process runs anything after it
        gc.set_threshold(*thresholds)


async def run_stager_process(kafka: KafkaSettings, db: DatabaseSettings, n: int,
                             journeys_dir: Path) -> StagerRun:
    """`run_stager` in a fresh process (bench/stager_process.py): what it measures is then the
    stager alone, not what earlier benchmarks of `make bench` left in this one (their heap,
    their frozen objects)."""
    command = [sys.executable, "-m", "bench.stager_process",
               "--touchpoints", kafka.touchpoints_topic, "--transitions", kafka.transitions_topic,
               "--dead-letters", kafka.dead_letter_topic, "--partitions", str(kafka.partitions),
               "--database", db.db, "--events", str(n), "--journeys", str(journeys_dir)]
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-15:]
        raise RuntimeError(f"the stager process failed (exit code {process.returncode}):\n"
                           + "\n".join(tail))
    data = json.loads(stdout.decode().strip().splitlines()[-1])
    samples = [(float(s), int(e), float(m)) for s, e, m in data.pop("rss_samples")]
    return StagerRun(**data, rss_samples=samples)


# -- the Quix Streams peer ----------------------------------------------------------------------

@dataclass(frozen=True)
class PeerRun:
    seconds: float  # from its first committed checkpoint to its last
    events: int  # committed in that time
    transitions: int
    peak_rss_mb: float
    run_s: float  # its Application.run, start-up (group join, RocksDB) and shut-down included

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


async def committed_total(admin: AIOKafkaAdminClient, group: str, topic: str) -> int:
    """The offsets `group` has committed on `topic`, summed: with exactly-once, the events whose
    transaction (state, output and offsets together) has committed."""
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except (KafkaError, OSError):
        return 0  # the group or its coordinator does not exist yet
    return sum(max(o.offset, 0) for tp, o in offsets.items() if tp.topic == topic)


async def run_peer(kafka: KafkaSettings, n: int, journeys_dir: Path, python: Path,
                   timeout_s: float) -> PeerRun:
    """The Quix Streams peer (bench/quix_peer.py) in its own environment over the same topic,
    timed from outside by its group's committed offsets (polled every 50 ms)."""
    group = f"bench-quix-{uuid.uuid4().hex[:6]}"
    command = [str(python), "-m", "bench.quix_peer", "--bootstrap", kafka.bootstrap_servers,
               "--source", kafka.touchpoints_topic, "--sink", f"{kafka.transitions_topic}.quix",
               "--group", group, "--partitions", str(kafka.partitions), "--events", str(n),
               "--journeys", str(journeys_dir)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    output = asyncio.create_task(process.communicate())
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    first: tuple[float, int] | None = None
    last = None
    deadline = time.perf_counter() + timeout_s
    try:
        while not output.done() and time.perf_counter() < deadline:
            committed = await committed_total(admin, group, kafka.touchpoints_topic)
            now = time.perf_counter()
            if first is None and committed > 0:
                first = (now, committed)
            if committed >= n:
                last = now
                break
            await asyncio.sleep(0.05)
        if last is None and not output.done():
            process.kill()  # out of time
        # Once it has committed everything it only closes (consumer, producer, RocksDB).
        await asyncio.wait({output}, timeout=60)
        if not output.done():
            process.kill()
        stdout, stderr = await output
    finally:
        await admin.close()
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0 or first is None or last is None:
        tail = stderr.decode(errors="replace").strip().splitlines()[-15:]
        raise RuntimeError(f"the Quix Streams peer did not apply {n:,} events (exit code "
                           f"{process.returncode}):\n" + "\n".join(tail))
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return PeerRun(last - first[0], n - first[1], int(result["transitions"]),
                   float(result["peak_rss_mb"]), float(result["run_s"]))


# -- one scenario and its figures ---------------------------------------------------------------

@dataclass
class Scenario:
    """One generated topic and what each reader of it managed."""

    events: int
    contacts: int  # distinct
    raw_rate: float | None = None
    dedupe_rate: float | None = None
    stager: StagerRun | None = None
    peer: PeerRun | None = None
    peer_problem: str = ""


async def scenario(events: int, contacts: int, journeys_dir: Path, *, baselines: bool = True,
                   peer_python: Path | None = PEER_PYTHON) -> Scenario:
    """Produce the topic, then read it with the baselines, the stager and the peer (each one
    asked for), printing each line as it is measured."""
    journeys = load_journeys(journeys_dir)
    kafka = scratch_topics("bench-stager")
    produced = await produce(kafka, iter_traffic(events, contacts))
    result = Scenario(events, min(events, contacts))
    print(f"stager benchmark: {events:,} events, {result.contacts:,} distinct contacts, "
          f"{kafka.partitions} partitions, journeys: "
          f"{', '.join(j.id for j in journeys)}", flush=True)
    print(f"  produce (setup)                    {rate(events, produced)}", flush=True)
    if baselines:
        seconds = await baseline(kafka, events, None)
        result.raw_rate = events / seconds
        print(f"  baseline: raw aiokafka consume     {rate(events, seconds)}", flush=True)
        async with scratch_database("bench_baseline") as db:
            seconds = await baseline(kafka, events, db)
            result.dedupe_rate = events / seconds
            print(f"  baseline: consume + asyncpg dedupe {rate(events, seconds)}", flush=True)
    async with scratch_database("bench_stager") as db:
        run = await run_stager_process(kafka, db, events, journeys_dir)
        result.stager = run
        print(f"  polku stager                       {rate(run.events, run.seconds)}"
              f"  -> {run.transitions:,.0f} transitions", flush=True)
        print(f"    its process's RSS: {run.rss_start_mb:,.0f} MiB a tenth of the way, "
              f"{run.rss_end_mb:,.0f} MiB at the end, peak {run.rss_peak_mb:,.0f} MiB",
              flush=True)
    if peer_python is not None:
        if not await asyncio.to_thread(peer_python.exists):
            result.peer_problem = f"{peer_python} is missing: run `make bench-peer`"
            print(f"  peer: skipped ({result.peer_problem})", flush=True)
        else:
            try:
                # Generous: the peer at a tenth of the stager's rate still finishes.
                peer = await run_peer(kafka, events, journeys_dir, peer_python,
                                      timeout_s=120 + 10 * run.seconds * events / run.events)
            except RuntimeError as exc:
                result.peer_problem = str(exc).splitlines()[0]
                print(f"  peer: {exc}", flush=True)
            else:
                result.peer = peer
                print(f"  peer: {PEER_NAME} (same engine)   {rate(peer.events, peer.seconds)}"
                      f"  -> {peer.transitions:,} transitions; peak RSS "
                      f"{peer.peak_rss_mb:,.0f} MiB", flush=True)
                print(f"  polku / peer                       {run.rate / peer.rate:10.2f}x",
                      flush=True)
    return result


def _details(result: Scenario) -> dict[str, Any]:
    details: dict[str, Any] = {"events": result.events, "contacts": result.contacts,
                               "raw_consume_rate": result.raw_rate,
                               "dedupe_rate": result.dedupe_rate}
    if result.stager is not None:
        run = result.stager
        details.update(stager_seconds=round(run.seconds, 2), stager_events_timed=run.events,
                       stager_transitions=run.transitions, rss_start_mb=run.rss_start_mb,
                       rss_end_mb=run.rss_end_mb, rss_peak_mb=run.rss_peak_mb)
    if result.peer is not None:
        peer = result.peer
        details.update(peer_seconds=round(peer.seconds, 2), peer_events_timed=peer.events,
                       peer_transitions=peer.transitions, peer_peak_rss_mb=peer.peak_rss_mb,
                       peer_run_s=peer.run_s)
    return details


def rate_figure(result: Scenario) -> Figure:
    """The stager's rate beside the dedupe baseline and the peer, with the issue's aim."""
    name = f"stager, {count(result.events)} events / {count(result.contacts)} contacts"
    aim = f">= {AIM_RATE:,.0f} ev/s and >= {AIM_OVER_PEER}x peer"
    polku = result.stager.rate if result.stager is not None else None
    peer = result.peer.rate if result.peer is not None else None
    figure = Figure(name, polku, "ev/s", result.dedupe_rate, "consume + asyncpg dedupe",
                    peer, PEER_NAME, aim, details=_details(result),
                    note=f"peer not measured: {result.peer_problem}" if result.peer_problem
                    else "")
    over_peer = figure.ratio if peer is not None else None
    return replace(figure, met=all_met(at_least(polku, AIM_RATE),
                                       at_least(over_peer, AIM_OVER_PEER)))


def scale_figures(scale: Scenario, reference: Scenario) -> list[Figure]:
    """With many contacts: the rate against the reference run's, and the stager's memory."""
    run = scale.stager
    assert run is not None and reference.stager is not None
    contacts = f"{count(scale.contacts)} contacts ({count(scale.events)} events)"
    ratio = run.rate / reference.stager.rate
    samples = run.rss_samples
    return [
        Figure(f"stager, {contacts}", run.rate, "ev/s", reference.stager.rate,
               f"{count(reference.contacts)} contacts", aim=f">= {AIM_SCALE_RATIO}x baseline",
               met=at_least(ratio, AIM_SCALE_RATIO), details=_details(scale)),
        Figure(f"stager peak RSS, {contacts}", run.rss_peak_mb, "MiB",
               aim=f"<= {AIM_RSS_MB:,.0f} MiB and flat (<= +{FLAT_GROWTH:.0%})",
               met=all_met(at_most(run.rss_peak_mb, AIM_RSS_MB), run.flat),
               note=f"RSS {run.rss_start_mb:,.0f} MiB a tenth of the way, "
                    f"{run.rss_end_mb:,.0f} MiB at the end, peak {run.rss_peak_mb:,.0f} MiB",
               details={"samples_s_events_mib": samples}),
    ]


async def figures(events: int = 200_000, contacts: int = 100_000,
                  scale_events: int = 1_000_000, scale_contacts: int = 1_000_000,
                  journeys_dir: Path = ROOT / "journeys",
                  peer_python: Path | None = PEER_PYTHON) -> list[Figure]:
    """`make bench`'s stager figures: the main scenario with its baselines and peer, then the
    stager alone with `scale_contacts` distinct contacts (0: not run)."""
    main = await scenario(events, contacts, journeys_dir, peer_python=peer_python)
    found = [rate_figure(main)]
    if scale_events and scale_contacts:
        print(flush=True)
        try:
            scale = await scenario(scale_events, scale_contacts, journeys_dir, baselines=False,
                                   peer_python=None)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            found.append(failed(f"stager, {count(scale_contacts)} contacts", "ev/s",
                                reason))
        else:
            found += scale_figures(scale, main)
    return found


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--journeys", type=Path, default=ROOT / "journeys")
    parser.add_argument("--no-peer", action="store_true", help="skip the Quix Streams peer")
    parser.add_argument("--peer-python", type=Path, default=PEER_PYTHON,
                        help="the interpreter of the peer's environment (`make bench-peer`)")
    args = parser.parse_args()
    await scenario(args.events, args.contacts, args.journeys.resolve(),
                   peer_python=None if args.no_peer else args.peer_python)


if __name__ == "__main__":
    asyncio.run(main())
