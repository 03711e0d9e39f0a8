"""End-to-end latency: an event posted to ingest until its webhook arrives, at a steady rate.

Run: `.venv/bin/python -m bench.pipeline [--rate R] [--seconds S]` (needs `make infra`; about
S + 40 s). Real `polku ingest`, `polku stager` and `polku actions` processes run on a scratch
database and scratch topics, with a one-stage journey whose entry fires a webhook to a local
receiver (bench.actions' receiver, in its own process). A client posts one `identify` per new
contact, R per second for S seconds; each carries the wall-clock moment it was posted as a trait,
and the receiver subtracts that from the moment the signed webhook arrives. So every figure
covers the whole path: HTTP into ingest, Kafka (acks=all), the stager's PostgreSQL transaction and
outbox, Kafka again, the actions worker's delivery record, signing and the POST.

Baseline, in the same run and at the same rate: raw aiokafka producing the same payloads to a
scratch topic and a raw consumer reading them back. The pipeline makes that Kafka hop twice, plus
two PostgreSQL commits and two HTTP requests, so it cannot get under twice the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer

from bench.actions import SECRET, SECRET_ENV, Receiver, percentile, wait_count
from bench.common import KeepAliveClient, basic_auth, scratch_database, scratch_topics
from bench.figures import Figure, at_most, failed
from services.ingest.sources import create_source
from shared.db.engine import make_engine
from shared.kafka import durable_producer, ensure_topics
from shared.settings import KafkaSettings
from tests.processes import ServiceProcess, service_env

# The aims of issue 14 at 1,000 events/s (docs/performance.md).
AIM_P50_MS = 50.0
AIM_P99_MS = 150.0


def write_journey(directory: Path, url: str) -> Path:
    """Every contact enters `signed-up` with its first event; entering it fires the webhook."""
    (directory / "pipeline.yaml").write_text(f"""
id: pipeline
version: 1
labels: {{fi: Mittaus, en: Bench}}
stages:
  - {{id: signed-up, labels: {{fi: Rekisteröitynyt, en: Signed up}}}}
  - {{id: customer, labels: {{fi: Asiakas, en: Customer}}}}
rules:
  - {{id: purchase, to: customer, when: {{event: Order Completed}}}}
actions:
  - on: {{stage_entered: signed-up}}
    webhooks:
      - {{url: "{url}/hooks/welcome", secret_env: {SECRET_ENV}}}
""", encoding="utf-8")
    return directory


def identify(contact: str) -> dict[str, object]:
    return {"type": "identify", "userId": contact, "messageId": str(uuid.uuid4()),
            "traits": {"email": f"{contact}@example.com", "plan": "trial",
                       "sent_at": time.time()},
            "context": {"page": {"url": "https://example.com/signup"},
                        "campaign": {"source": "newsletter", "medium": "email"}}}


async def post_steadily(url: str, write_key: str, per_second: int, seconds: float) -> int:
    """Post one identify per new contact on a fixed schedule; returns how many were accepted."""
    tag = uuid.uuid4().hex[:6]
    accepted = 0
    refused: Counter[str] = Counter()
    async with KeepAliveClient(url, basic_auth(write_key), connections=32) as client:

        async def post(i: int) -> None:
            nonlocal accepted
            status, answer = await client.post(
                "/v1/identify", json.dumps(identify(f"p-{tag}-{i}")).encode())
            if status == 200:
                accepted += 1
            else:
                refused[f"{status} {answer[:120]!r}"] += 1

        tasks = []
        started = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - started) < seconds:
            for i in range(sent, int(elapsed * per_second)):
                tasks.append(asyncio.create_task(post(i)))
            sent = max(sent, int(elapsed * per_second))
            await asyncio.sleep(0.002)
        await asyncio.gather(*tasks)
    for answer, count in refused.items():
        print(f"  ingest refused {count}: {answer}")
    return accepted


async def kafka_round_trip(kafka: KafkaSettings, per_second: int, seconds: float) -> list[float]:
    """Raw aiokafka: produce (acks=all) the same payloads at the same rate, consume them back."""
    topic = f"{kafka.touchpoints_topic}.baseline"
    await ensure_topics(kafka, [topic])
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka.bootstrap_servers,
                                auto_offset_reset="earliest", group_id=None)
    producer = durable_producer(kafka)
    await consumer.start()
    await producer.start()
    latencies: list[float] = []
    expected = int(per_second * seconds)

    async def consume() -> None:
        async for record in consumer:
            latencies.append(time.time() - json.loads(record.value)["traits"]["sent_at"])
            if len(latencies) >= expected:
                return

    reader = asyncio.create_task(consume())
    try:
        await asyncio.sleep(1)  # the consumer has its partitions before the first send
        started = time.monotonic()
        sent = 0
        acks = []
        while sent < expected:
            due = min(expected, int((time.monotonic() - started) * per_second))
            for i in range(sent, due):
                acks.append(await producer.send(topic, json.dumps(identify(f"b-{i}")).encode(),
                                                key=f"b-{i}".encode()))
            sent = due
            await asyncio.sleep(0.002)
        await asyncio.gather(*acks)
        await asyncio.wait_for(reader, 30)
    finally:
        reader.cancel()
        await producer.stop()
        await consumer.stop()
    return latencies


def describe(label: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (f"  {label}: p50 {percentile(ms, 50):7.1f} ms   p99 {percentile(ms, 99):7.1f} ms   "
            f"max {max(ms):7.1f} ms   mean {statistics.fmean(ms):6.1f} ms   ({len(ms):,})")


@dataclass(frozen=True)
class PipelineResult:
    baseline_ms: list[float]  # raw produce → consume, one hop
    latencies_ms: list[float]  # event posted → webhook received, in the order they arrived
    accepted: int  # events ingest accepted during the run
    received: int  # their webhooks, within 60 s of the last post
    posting_s: float  # how long posting them took (the offered rate held if ≈ the run's length)
    lag_s: float  # from the last post's answer until the last webhook arrived

    @property
    def offered_rate(self) -> float:
        return self.accepted / self.posting_s


async def run(per_second: int, seconds: float) -> PipelineResult:
    os.environ[SECRET_ENV] = SECRET
    kafka = scratch_topics("bench-pipeline")
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        receiver = stack.enter_context(Receiver())
        journeys = write_journey(Path(tmp), receiver.url)
        async with scratch_database("polku_bench_pipeline") as database, \
                httpx.AsyncClient(trust_env=False) as control:
            await ensure_topics(kafka, [kafka.touchpoints_topic, kafka.transitions_topic,
                                        kafka.dead_letter_topic])
            print(f"pipeline bench: {per_second}/s new contacts for {seconds:g} s, "
                  "one webhook each")
            baseline = await kafka_round_trip(kafka, per_second, seconds)
            print(describe("baseline  raw aiokafka produce → consume (one hop)", baseline))

            engine = make_engine(database)
            _, write_key = await create_source(engine, "bench")
            await engine.dispose()
            tag = uuid.uuid4().hex[:8]
            env = service_env(kafka, database, POLKU_JOURNEYS_DIR=str(journeys),
                              POLKU_STAGER_GROUP_ID=f"bench-stager-{tag}",
                              POLKU_ACTIONS_GROUP_ID=f"bench-actions-{tag}",
                              POLKU_ACTIONS_EGRESS_ALLOW="127.0.0.0/8",
                              POLKU_ACTIONS_RETRY_JITTER="0")
            services = [ServiceProcess(name, env).start()
                        for name in ("ingest", "stager", "actions")]
            for service in services:
                stack.callback(service.kill)
            for service in services:
                await asyncio.to_thread(service.wait_status, "/readyz", 200, 60)

            # Warm up (connections, consumer assignment, JIT-free but cache-warm code paths).
            warm = await post_steadily(services[0].url, write_key, per_second, 3)
            await wait_count(receiver, control, warm, timeout_s=60)
            await receiver.reset(control)

            started = time.monotonic()
            accepted = await post_steadily(services[0].url, write_key, per_second, seconds)
            posted = time.monotonic()
            got = await wait_count(receiver, control, accepted, timeout_s=60)
            lag = time.monotonic() - posted
            latencies = (await receiver.stats(control))["latencies"]
            print(describe("polku     ingest → stager → actions → webhook", latencies))
            print(f"  {accepted:,} events accepted by ingest, {got:,} webhooks received")
            if got < accepted:
                print(f"  only {got:,} of {accepted:,} accepted events reached the receiver "
                      "within 60 s: the pipeline is below the offered rate")
            return PipelineResult([s * 1000 for s in baseline], [s * 1000 for s in latencies],
                                  accepted, got, posted - started, lag)


def figures_of(result: PipelineResult, per_second: int, seconds: float) -> list[Figure]:
    """p50 and p99 beside the raw hop's, and whether anything queued up: how long after the
    last post the last webhook came (about one latency when the pipeline keeps up)."""
    ms, raw = result.latencies_ms, result.baseline_ms
    at = f"@ {per_second:,} ev/s"
    tenth = max(1, len(ms) // 10)
    details = {"rate": per_second, "seconds": seconds, "accepted": result.accepted,
               "received": result.received, "offered_rate": round(result.offered_rate, 1),
               "posting_s": round(result.posting_s, 2), "lag_s": round(result.lag_s, 3),
               "p50_first_tenth_ms": percentile(ms[:tenth], 50) if ms else None,
               "p50_last_tenth_ms": percentile(ms[-tenth:], 50) if ms else None,
               "max_ms": max(ms) if ms else None}
    if not ms:
        return [failed(f"event → webhook p50 {at}", "ms", "no webhook arrived")]
    p50, p99 = percentile(ms, 50), percentile(ms, 99)
    lag_ms = result.lag_s * 1000
    queued = result.received < result.accepted
    still = (f" ({result.accepted - result.received:,} still queued when the wait ended)"
             if queued else "")
    return [
        Figure(f"event → webhook p50 {at}", p50, "ms", percentile(raw, 50), "raw Kafka hop",
               aim=f"<= {AIM_P50_MS:.0f} ms", met=at_most(p50, AIM_P50_MS), details=details),
        Figure(f"event → webhook p99 {at}", p99, "ms", percentile(raw, 99), "raw Kafka hop",
               aim=f"<= {AIM_P99_MS:.0f} ms", met=at_most(p99, AIM_P99_MS)),
        Figure(f"pipeline {at}: lag after the last post", lag_ms, "ms",
               aim=f"<= {AIM_P99_MS:.0f} ms (nothing queued)",
               met=not queued and lag_ms <= AIM_P99_MS,
               note=(f"offered {result.offered_rate:,.0f} ev/s over {result.posting_s:.0f} s; "
                     f"{result.received:,} of {result.accepted:,} webhooks arrived{still}; p50 "
                     f"{details['p50_first_tenth_ms']:.0f} ms in the first tenth of arrivals, "
                     f"{details['p50_last_tenth_ms']:.0f} ms in the last")),
    ]


async def figures(per_second: int = 1000, seconds: float = 60.0) -> list[Figure]:
    result = await run(per_second, seconds)
    return figures_of(result, per_second, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # fresh topics' leader elections
    asyncio.run(run(args.rate, args.seconds))


if __name__ == "__main__":
    main()
