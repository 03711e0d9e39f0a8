"""Stager throughput with 100k distinct contacts, beside raw aiokafka/asyncpg baselines.

Run: `.venv/bin/python -m bench.stager [--events N] [--contacts N]` (needs `make infra`).
The same pre-produced topic is read three times, each by a fresh consumer group:
  1. raw aiokafka: consume + json.loads (the broker's floor);
  2. raw aiokafka + asyncpg: the same, plus one transaction per partition batch that writes a
     dedupe row per event and the offset (the database floor for exactly-once bookkeeping);
  3. the stager itself: parse, dedupe, engine over every shipped journey, state upsert,
     transitions + outbox, offset, and publishing transitions back to Kafka.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer

from bench.common import rate, scratch_database, scratch_topics
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

# A mix drawn from the seeds' touchpoints: mostly content, some intent, few purchases.
TRAFFIC = [
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


def traffic(n_events: int, n_contacts: int) -> list[dict[str, object]]:
    rng = random.Random(7)
    weights = [w for w, _ in TRAFFIC]
    start = datetime(2026, 9, 1, tzinfo=UTC)
    messages = []
    for i in range(n_events):
        contact = f"bench-{i % n_contacts}"
        shape = dict(rng.choices(TRAFFIC, weights)[0][1])
        at = start + timedelta(seconds=i * 10)
        messages.append(touchpoint(contact, at, **shape))  # type: ignore[arg-type]
    return messages


async def produce(kafka: KafkaSettings, messages: list[dict[str, object]]) -> float:
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


async def run_stager(
    kafka: KafkaSettings, db: DatabaseSettings, n: int, journeys: list[Journey]
) -> tuple[float, int, float]:
    """Seconds from the first committed batch to the last, the events applied in that time (the
    first batches' are not: they were done before the clock started), and transitions."""
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
    try:
        while True:
            done = counter._value.get() - before
            if started is None and done > 0:
                started, first = time.perf_counter(), int(done)
            if done >= n:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - (started or time.perf_counter())
        transitions = sum(
            s.value for m in metrics.TRANSITIONS.collect() for s in m.samples
            if s.name.endswith("_total")
        )
        return elapsed, n - first, transitions
    finally:
        stager.stop()
        await task
        await producer.stop()
        await engine.dispose()
        gc.unfreeze()  # `make bench` runs the next benchmark in this process
        gc.set_threshold(*thresholds)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--journeys", type=Path, default=ROOT / "journeys")
    args = parser.parse_args()
    journeys = load_journeys(args.journeys)
    kafka = scratch_topics("bench-stager")
    messages = traffic(args.events, args.contacts)
    produced = await produce(kafka, messages)
    print(f"stager benchmark: {args.events:,} events, {args.contacts:,} distinct contacts, "
          f"{kafka.partitions} partitions, journeys: "
          f"{', '.join(j.id for j in journeys)}")
    print(f"  produce (setup)                    {rate(args.events, produced)}")
    seconds = await baseline(kafka, args.events, None)
    print(f"  baseline: raw aiokafka consume     {rate(args.events, seconds)}")
    async with scratch_database("bench_baseline") as db:
        seconds = await baseline(kafka, args.events, db)
        print(f"  baseline: consume + asyncpg dedupe {rate(args.events, seconds)}")
    async with scratch_database("bench_stager") as db:
        seconds, timed, transitions = await run_stager(kafka, db, args.events, journeys)
        print(f"  polku stager                       {rate(timed, seconds)}"
              f"  -> {transitions:,.0f} transitions")


if __name__ == "__main__":
    asyncio.run(main())
