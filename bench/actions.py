"""Actions worker throughput and latency, beside raw httpx POSTs to the same local receiver.

Run: `.venv/bin/python -m bench.actions [--deliveries N] [--rate R] [--seconds S]` (needs
`make infra`). The receiver is a minimal HTTP/1.1 server in its own process (204 for every
POST). Three measurements, bounded to about 90 s in all:
  1. baseline: raw httpx POSTs of a same-sized body, as many at a time as the worker may send
     to one endpoint (the HTTP floor of this machine);
  2. throughput: N transitions already on the topic, one webhook each: from worker start until
     the receiver has them all (consume, persist, claim, sign, POST, record);
  3. latency at a steady rate: transitions produced at R/s for S seconds; the time from
     producing a transition to its webhook arriving (p50/p99).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import socket
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import rate, scratch_database, scratch_topics
from bench.figures import Figure, at_least
from services.actions.app import create_app
from services.actions.settings import ActionsSettings
from shared.clock import SystemClock
from shared.kafka import durable_producer, ensure_topics
from shared.settings import DatabaseSettings, KafkaSettings

SECRET = "whsec_" + base64.b64encode(b"bench-secret-0123456789abcdefgh").decode()
SECRET_ENV = "POLKU_BENCH_WEBHOOK_SECRET"
AIM_RATE = 3_000.0  # deliveries/s to a local receiver (issue 14, docs/performance.md)


# -- the receiver (child process) --------------------------------------------------------------

def _serve(sock: socket.socket) -> None:
    count = 0
    latencies: list[float] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length) if length else b""
                if head.startswith(b"GET /count"):  # polled: kept small
                    answer = b"%d" % count
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                                 b"content-length: %d\r\n\r\n%s" % (len(answer), answer))
                elif head.startswith(b"GET /stats"):
                    answer = json.dumps({"count": count, "latencies": latencies}).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                                 b"content-length: %d\r\n\r\n%s" % (len(answer), answer))
                elif head.startswith(b"POST /reset"):
                    count = 0
                    latencies.clear()
                    writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                else:
                    count += 1
                    if b'"sent_at"' in body:
                        sent = json.loads(body)["traits"]["sent_at"]
                        latencies.append(time.time() - sent)
                    writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, sock=sock, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class Receiver:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.process = multiprocessing.get_context("fork").Process(
            target=_serve, args=(self.sock,), daemon=True)

    def __enter__(self) -> Receiver:
        self.process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.kill()
        self.process.join(5)

    async def stats(self, client: httpx.AsyncClient) -> dict[str, Any]:
        return dict((await client.get(self.url + "/stats")).json())

    async def count(self, client: httpx.AsyncClient) -> int:
        return int((await client.get(self.url + "/count")).text)

    async def reset(self, client: httpx.AsyncClient) -> None:
        await client.post(self.url + "/reset")


# -- the measurements --------------------------------------------------------------------------

def transition(i: int, sent_at: float | None = None) -> dict[str, Any]:
    traits: dict[str, Any] = {"email": f"bench-{i}@example.com", "company": "Bench Oy"}
    if sent_at is not None:
        traits["sent_at"] = sent_at
    return {
        "v": 1, "type": "contact.stage_changed", "transition_id": str(uuid.uuid4()),
        "journey": {"id": "bench", "version": 1}, "contact": f"bench-{i}", "traits": traits,
        "from": {"id": "prioritization", "labels": {"fi": "Priorisointi", "en": "Prioritization"}},
        "to": {"id": "selection", "labels": {"fi": "Valinta", "en": "Selection"}},
        "at": "2026-11-23T08:00:00.000Z",
        "cause": {"kind": "event", "message_id": str(uuid.uuid4()), "event": "Demo Requested"},
        "rule_id": "demo-request", "reason": "asked for a demo",
    }


def write_journey(directory: Path, url: str) -> Path:
    (directory / "bench.yaml").write_text(f"""
id: bench
version: 1
labels: {{fi: Mittaus, en: Bench}}
stages:
  - {{id: prioritization, labels: {{fi: Priorisointi, en: Prioritization}}}}
  - {{id: selection, labels: {{fi: Valinta, en: Selection}}}}
rules:
  - {{id: demo-request, to: selection, when: {{event: Demo Requested}}}}
actions:
  - on: {{stage_entered: selection}}
    webhooks:
      - {{url: "{url}/hooks/sales", secret_env: {SECRET_ENV}}}
""")
    return directory


async def baseline(receiver: Receiver, count: int, concurrency: int, max_s: float
                   ) -> tuple[int, float]:
    """POST a same-sized body `count` times (or for `max_s`); returns (done, seconds)."""
    body = json.dumps(transition(0)).encode()
    done = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:
        started = time.perf_counter()
        deadline = started + max_s

        async def worker() -> None:
            nonlocal done
            while done < count and time.perf_counter() < deadline:
                done += 1
                answer = await client.post(receiver.url + "/hooks/raw", content=body,
                                           headers={"content-type": "application/json"})
                answer.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done, time.perf_counter() - started


async def produce(kafka: KafkaSettings, messages: list[dict[str, Any]]) -> None:
    producer = durable_producer(kafka, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(kafka.transitions_topic, json.dumps(m).encode(),
                                       key=m["contact"].encode()) for m in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def steady(kafka: KafkaSettings, per_second: int, seconds: float) -> int:
    """Produce at a steady rate, each transition stamped with the moment it was sent."""
    producer = durable_producer(kafka, linger_ms=1)
    await producer.start()
    sent = 0
    try:
        started = time.monotonic()
        futures = []
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * per_second)
            while sent < due:
                message = transition(sent, sent_at=time.time())
                futures.append(await producer.send(
                    kafka.transitions_topic, json.dumps(message).encode(),
                    key=message["contact"].encode()))
                sent += 1
            await asyncio.sleep(0.002)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


async def wait_count(receiver: Receiver, client: httpx.AsyncClient, count: int,
                     timeout_s: float) -> int:
    """Wait until the receiver has `count` requests or `timeout_s` passed; returns how many."""
    deadline = time.monotonic() + timeout_s
    # Only the count: polling /stats would move every latency so far, 50 times a second.
    while (got := await receiver.count(client)) < count:
        if time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.02)
    return got


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


@dataclass(frozen=True)
class ActionsResult:
    baseline_rate: float  # raw httpx POSTs/s
    delivered: int  # of the N queued deliveries, within the time bound
    seconds: float  # from worker start until the receiver had them
    first_s: float  # from worker start to the first webhook (start-up: group join, assignment)
    latencies_ms: list[float]  # at the steady rate
    sent: int  # transitions produced at the steady rate
    arrived: int  # their webhooks received within 15 s of the last one sent

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds


async def run(deliveries: int, per_second: int, seconds: float,
              settings: ActionsSettings) -> ActionsResult:
    os.environ[SECRET_ENV] = SECRET
    with Receiver() as receiver, tempfile.TemporaryDirectory() as tmp:
        journeys = write_journey(Path(tmp), receiver.url)
        async with scratch_database("polku_bench_actions") as database, \
                httpx.AsyncClient(trust_env=False) as control:
            kafka = scratch_topics("bench-actions")
            await ensure_topics(kafka, [kafka.transitions_topic, kafka.dead_letter_topic])
            print(f"actions bench: {deliveries:,} deliveries to one local endpoint, "
                  f"{settings.endpoint_concurrency} at a time")
            done, took = await baseline(receiver, deliveries, settings.endpoint_concurrency,
                                        max_s=20)
            print(f"  baseline  raw httpx POSTs        {rate(done, took)}")
            await receiver.reset(control)

            await produce(kafka, [transition(i) for i in range(deliveries)])
            started = time.perf_counter()
            measured = await _measure_throughput(kafka, database, journeys, settings, receiver,
                                                 control, deliveries, started, per_second,
                                                 seconds)
            return ActionsResult(done / took, *measured)


async def _measure_throughput(
    kafka: KafkaSettings, database: DatabaseSettings, journeys: Path, settings: ActionsSettings,
    receiver: Receiver, control: httpx.AsyncClient, deliveries: int, started: float,
    per_second: int, seconds: float,
) -> tuple[int, float, float, list[float], int, int]:
    app = create_app(kafka, database, settings, journeys, SystemClock())
    async with app.router.lifespan_context(app):
        await wait_count(receiver, control, 1, timeout_s=40)
        first = time.perf_counter() - started
        got = await wait_count(receiver, control, deliveries, timeout_s=40)
        took = time.perf_counter() - started
        print(f"  actions   consume→sign→POST→record {rate(got, took)}"
              + ("" if got == deliveries else f"  (stopped at the time bound, of {deliveries:,})"))
        await receiver.reset(control)
        sent = await steady(kafka, per_second, seconds)
        arrived = await wait_count(receiver, control, sent, timeout_s=15)
        latencies = (await receiver.stats(control))["latencies"]
    ms = [v * 1000 for v in latencies]
    print(f"  latency   transition produced → webhook received at {per_second}/s for "
          f"{seconds:g} s ({len(ms):,} webhooks): p50 {percentile(ms, 50):.1f} ms, "
          f"p99 {percentile(ms, 99):.1f} ms, max {max(ms):.1f} ms, "
          f"mean {statistics.fmean(ms):.1f} ms")
    if arrived < sent:
        print(f"            only {arrived:,} of {sent:,} arrived within 15 s of the last one "
              f"sent: throughput here is below the offered rate, so these latencies include "
              f"queueing")
    return got, took, first, ms, sent, arrived


def settings_for(concurrency: int) -> ActionsSettings:
    return ActionsSettings(
        group_id=f"bench-actions-{uuid.uuid4().hex[:8]}", egress_allow=("127.0.0.0/8",),
        endpoint_concurrency=concurrency, retry_jitter=0,
    )


async def figures(deliveries: int = 5_000, per_second: int = 500, seconds: float = 10.0,
                  concurrency: int | None = None) -> list[Figure]:
    """The run above, printed as it goes; the figure of issue 14 is deliveries per second."""
    settings = settings_for(concurrency or ActionsSettings().endpoint_concurrency)
    result = await run(deliveries, per_second, seconds, settings)
    ms = result.latencies_ms
    after_first = (result.delivered - 1) / max(result.seconds - result.first_s, 1e-9)
    return [Figure(
        "webhook deliveries", result.rate, "/s", result.baseline_rate,
        f"raw httpx, {settings.endpoint_concurrency} at a time", aim=f">= {AIM_RATE:,.0f}/s",
        met=at_least(result.rate, AIM_RATE),
        note=(f"the clock starts with the worker: its first webhook came after "
              f"{result.first_s:.1f} s, and {after_first:,.0f}/s from then on"),
        details={"deliveries": deliveries, "delivered": result.delivered,
                 "seconds": round(result.seconds, 2), "first_delivery_s": round(result.first_s, 2),
                 "rate_after_first": after_first, "steady_rate": per_second,
                 "steady_p50_ms": percentile(ms, 50) if ms else None,
                 "steady_p99_ms": percentile(ms, 99) if ms else None,
                 "steady_sent": result.sent, "steady_arrived": result.arrived},
    )]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=5_000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=ActionsSettings().endpoint_concurrency)
    args = parser.parse_args()
    asyncio.run(figures(args.deliveries, args.rate, args.seconds, args.concurrency))


if __name__ == "__main__":
    main()
