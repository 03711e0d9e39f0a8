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
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer

from bench.actions import SECRET, SECRET_ENV, Receiver, percentile, wait_count
from bench.common import KeepAliveClient, basic_auth, scratch_database, scratch_topics
from services.ingest.sources import create_source
from shared.db.engine import make_engine
from shared.kafka import durable_producer, ensure_topics
from shared.settings import KafkaSettings
from tests.processes import ServiceProcess, service_env


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


async def run(per_second: int, seconds: float) -> None:
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

            accepted = await post_steadily(services[0].url, write_key, per_second, seconds)
            got = await wait_count(receiver, control, accepted, timeout_s=60)
            latencies = (await receiver.stats(control))["latencies"]
            print(describe("polku     ingest → stager → actions → webhook", latencies))
            print(f"  {accepted:,} events accepted by ingest, {got:,} webhooks received")
            if got < accepted:
                print(f"  only {got:,} of {accepted:,} accepted events reached the receiver "
                      "within 60 s: the pipeline is below the offered rate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # fresh topics' leader elections
    asyncio.run(run(args.rate, args.seconds))


if __name__ == "__main__":
    main()
