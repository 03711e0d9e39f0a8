"""Ingest throughput: batches of 100 and single events over HTTP, beside a raw aiokafka producer.

Run: `.venv/bin/python -m bench.ingest [--seconds S] [--concurrency C]` (needs `make infra`;
about 50 s with the defaults). A real `polku ingest` process is started on a scratch database
and topic; C keep-alive HTTP/1.1 connections (bench.common.KeepAliveClient, far lighter than
httpx) then post, for S seconds each:
  1. /v1/batch with 100 events per request (accepted events/s);
  2. /v1/<type> with one event per request (requests/s);
and in the same run a raw aiokafka producer (the same durable settings: acks=all, idempotent)
sends the same events, already encoded, from C concurrent loops: 100 at a time with the
acknowledgements awaited together, then one at a time. That is the floor Kafka and the client
library impose on this machine. Every figure counts only what was acknowledged (a 200 from
ingest, an ack from Kafka). Client, server and broker share the machine's CPUs; the CPU time
each spent per event is printed to tell a slow server from a busy machine. With too few
concurrent clients throughput is bound by Kafka's acknowledgement latency, not by ingest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.common import KeepAliveClient, basic_auth, rate, scratch_database, scratch_topics
from bench.figures import Figure, at_least
from services.ingest.sources import create_source
from shared.db.engine import make_engine
from shared.kafka import durable_producer, ensure_topics
from shared.settings import KafkaSettings
from tests.processes import ServiceProcess, service_env

BATCH = 100
# The aims of issue 14 (docs/performance.md).
AIM_BATCHED_OVER_RAW = 0.7
AIM_SINGLE = 6_000.0
# Touchpoints drawn from the seeds, with the context a browser SDK sends along.
EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("page", {"name": "Pricing", "properties": {"path": "/pricing", "title": "Pricing"}}),
    ("page", {"name": "Blog", "properties": {"path": "/blog/asiakaspolku"}}),
    ("track", {"event": "Ad Clicked", "properties": {"campaign": "spring", "cost": 0.42}}),
    ("track", {"event": "Guide Downloaded", "properties": {"guide": "buyers-guide"}}),
    ("track", {"event": "Demo Requested", "properties": {"plan": "pro", "seats": 25}}),
    ("track", {"event": "Order Completed", "properties": {"revenue": 1200, "currency": "EUR"}}),
    ("identify", {"traits": {"persona": "b2b-buyer", "company": "Esimerkki Oy"}}),
]
CONTEXT = {
    "page": {"url": "https://example.fi/pricing", "referrer": "https://www.google.com/"},
    "campaign": {"source": "google", "medium": "cpc", "name": "spring"},
    "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
    "library": {"name": "analytics-python", "version": "2.4.0"},
    "ip": "203.0.113.7",
}


def make_events(count: int, contacts: int = 10_000) -> list[dict[str, Any]]:
    rng = random.Random(11)
    start = datetime(2026, 9, 1, tzinfo=UTC)
    events = []
    for i in range(count):
        kind, fields = rng.choice(EVENTS)
        at = start + timedelta(seconds=i)
        events.append({
            "type": kind,
            "userId": f"bench-{rng.randrange(contacts)}",
            "messageId": str(uuid.uuid4()),
            "timestamp": at.isoformat(timespec="milliseconds"),
            "context": CONTEXT,
            **fields,
        })
    return events


async def run_for(seconds: float, workers: int, step: Callable[[int], Awaitable[int]]) -> tuple[
        int, float]:
    """Run `step(i)` in `workers` concurrent loops for `seconds`; (events done, elapsed)."""
    done = 0
    stop_at = time.perf_counter() + seconds

    async def loop(worker: int) -> None:
        nonlocal done
        i = worker
        while time.perf_counter() < stop_at:
            # Not `done += await ...`: that reads `done` before the await and loses updates.
            count = await step(i)
            done += count
            i += workers

    started = time.perf_counter()
    await asyncio.gather(*(loop(w) for w in range(workers)))
    return done, time.perf_counter() - started


@dataclass(frozen=True)
class Phase:
    count: int
    seconds: float
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    ack_wait_s: float = 0.0  # mean time from handing 100 events (or 1) to Kafka to all acked

    def per_item(self, cpu_s: float) -> str:
        return f"{cpu_s / max(self.count, 1) * 1e6:,.0f} µs"


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bench_http(url: str, write_key: str, events: list[dict[str, Any]], seconds: float,
                     workers: int, server_pid: int) -> tuple[Phase, Phase]:
    # Bodies are encoded up front so the client spends its CPU on HTTP, not on JSON.
    sent_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    batches = [
        json.dumps({"batch": events[i:i + BATCH], "sentAt": sent_at}).encode()
        for i in range(0, len(events) - BATCH + 1, BATCH)
    ]
    singles = [(f"/v1/{e['type']}", json.dumps({**e, "sentAt": sent_at}).encode())
               for e in events]
    async with KeepAliveClient(url, basic_auth(write_key), connections=workers) as client, \
            httpx.AsyncClient(base_url=url, timeout=30) as control:

        async def post_batch(i: int) -> int:
            status, answer = await client.post("/v1/batch", batches[i % len(batches)])
            if status != 200:
                raise RuntimeError(f"ingest answered {status}: {answer[:200]!r}")
            return int(json.loads(answer)["accepted"])

        async def post_single(i: int) -> int:
            path, body = singles[i % len(singles)]
            status, answer = await client.post(path, body)
            if status != 200:
                raise RuntimeError(f"ingest answered {status}: {answer[:200]!r}")
            return 1

        async def produce_seconds() -> tuple[float, float]:
            text = (await control.get("/metrics")).text
            values = dict(line.split(" ", 1) for line in text.splitlines()
                          if line.startswith("polku_ingest_produce_seconds_"))
            return (float(values["polku_ingest_produce_seconds_sum"]),
                    float(values["polku_ingest_produce_seconds_count"]))

        async def measured(step: Callable[[int], Awaitable[int]]) -> Phase:
            server = cpu_seconds(server_pid)
            client = time.process_time()
            waited, produced = await produce_seconds()
            count, elapsed = await run_for(seconds, workers, step)
            waited_after, produced_after = await produce_seconds()
            return Phase(count, elapsed, cpu_seconds(server_pid) - server,
                         time.process_time() - client,
                         (waited_after - waited) / max(produced_after - produced, 1))

        await run_for(1, workers, post_batch)  # warm-up: connections, producer batches
        batched = await measured(post_batch)
        single = await measured(post_single)
    return batched, single


async def bench_raw(kafka: KafkaSettings, events: list[dict[str, Any]], seconds: float,
                    workers: int) -> tuple[Phase, Phase]:
    topic = kafka.touchpoints_topic + ".raw"
    await ensure_topics(kafka, [topic])
    producer = durable_producer(kafka)
    await producer.start()
    try:
        encoded = [(str(e["userId"]).encode(), json.dumps(e).encode()) for e in events]

        async def phase(size: int) -> Phase:
            groups = [encoded[i:i + size] for i in range(0, len(encoded) - size + 1, size)]
            waits: list[float] = []

            async def send_group(i: int) -> int:
                group = groups[i % len(groups)]
                started = time.perf_counter()
                futures = [await producer.send(topic, value, key=key) for key, value in group]
                await asyncio.gather(*futures)
                waits.append(time.perf_counter() - started)
                return len(group)

            await run_for(1, workers, send_group)
            waits.clear()
            cpu = time.process_time()
            count, elapsed = await run_for(seconds, workers, send_group)
            return Phase(count, elapsed, client_cpu_s=time.process_time() - cpu,
                         ack_wait_s=sum(waits) / max(len(waits), 1))

        return await phase(BATCH), await phase(1)
    finally:
        await producer.stop()


async def figures(seconds: float = 8, workers: int = 32) -> list[Figure]:
    """Both phases against a real ingest process and the raw producer, printed as they are
    measured; the figures of issue 14: batched (against raw) and single events (absolute)."""
    kafka = scratch_topics("bench-ingest")
    await ensure_topics(kafka, [kafka.touchpoints_topic])
    events = make_events(20_000)
    async with scratch_database("polku_bench_ingest") as database:
        engine = make_engine(database)
        try:
            _, write_key = await create_source(engine, "bench")
        finally:
            await engine.dispose()
        service = ServiceProcess("ingest", service_env(kafka, database)).start()
        try:
            await asyncio.to_thread(service.wait_status, "/readyz", 200, 60)
            assert service.process is not None
            batched, single = await bench_http(service.url, write_key, events, seconds,
                                               workers, service.process.pid)
        finally:
            service.kill()
    raw_batched, raw_single = await bench_raw(kafka, events, seconds, workers)

    print(f"ingest bench: {seconds:g} s per phase, {workers} concurrent clients, "
          f"{os.cpu_count()} CPUs shared by client, server and broker")
    print(f"  batches of {BATCH}, events/s")
    print(report("raw aiokafka producer", raw_batched, "baseline", "producer", "event"))
    print(report("ingest /v1/batch", batched, ratio(batched, raw_batched), "client", "event"))
    print("  single events, requests/s")
    print(report("raw aiokafka producer", raw_single, "baseline", "producer", "event"))
    print(report("ingest /v1/<type>", single, ratio(single, raw_single), "client", "request"))

    batched_rate, raw_batched_rate = per_second(batched), per_second(raw_batched)
    single_rate = per_second(single)
    return [
        Figure(f"ingest, batches of {BATCH}", batched_rate, "ev/s", raw_batched_rate,
               "raw aiokafka", aim=f">= {AIM_BATCHED_OVER_RAW}x baseline",
               met=at_least(batched_rate / raw_batched_rate, AIM_BATCHED_OVER_RAW),
               details=_details(batched, raw_batched)),
        Figure("ingest, single events", single_rate, "req/s", per_second(raw_single),
               "raw aiokafka", aim=f">= {AIM_SINGLE:,.0f} req/s",
               met=at_least(single_rate, AIM_SINGLE), details=_details(single, raw_single)),
    ]


def per_second(phase: Phase) -> float:
    return phase.count / phase.seconds


def _details(ingest: Phase, raw: Phase) -> dict[str, float]:
    return {"server_cpu_us": ingest.server_cpu_s / max(ingest.count, 1) * 1e6,
            "ack_wait_ms": ingest.ack_wait_s * 1e3, "raw_ack_wait_ms": raw.ack_wait_s * 1e3}


def ratio(ingest: Phase, raw: Phase) -> str:
    return f"{(ingest.count / ingest.seconds) / (raw.count / raw.seconds):.0%} of raw"


def report(name: str, phase: Phase, comparison: str, client: str, unit: str) -> str:
    cpu = [f"{client} CPU {phase.per_item(phase.client_cpu_s)}/{unit}"]
    if phase.server_cpu_s:
        cpu.insert(0, f"server CPU {phase.per_item(phase.server_cpu_s)}/{unit}")
    return (f"    {name:<23}{rate(phase.count, phase.seconds)}  {comparison:>11}; "
            f"{', '.join(cpu)}, acks in {phase.ack_wait_s * 1e3:.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(figures(args.seconds, args.concurrency))
