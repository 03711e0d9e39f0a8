"""A broker stopped gracefully under load and started again: ingest recovers by itself.

Before, the idempotent producer came back from the restart with a gap in a partition's sequence
numbers (a batch that expired while no leader was known took its sequence number with it), the
broker refused every later batch with OutOfOrderSequenceNumber, and ingest answered 503 until
it was restarted while /readyz said ready. Now a finished producer is replaced.

Stops the shared local broker (deploy/local/kafka.sh serialises this with other tests) and
always starts it again. What is asserted about the topic: every acknowledged messageId is on
it; duplicates are allowed (a request answered 503 may have been partly written, and the SDKs
retry it with the same messageIds) because the stager applies each (contact, messageId) once,
which the stager run at the end shows: every acknowledged event is applied, and the applied
count equals the distinct messageIds on the topic.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clock import SystemClock
from shared.db.engine import make_engine
from shared.db.tables import processed_messages
from shared.kafka import broker_reachable
from shared.settings import DatabaseSettings, KafkaSettings
from tests.processes import ServiceProcess, local_script, started_ingest
from tests.stager_harness import payloads, read_topic, running_stager, wait_consumed

PRODUCE_TIMEOUT_S = 3.0
EVENTS_PER_S = 500
SENDERS = 5
BATCH = 20  # 5 senders x 20 events every 0.2 s = 500 events/s
OUTAGE_S = 10.0
CONTACTS = 60  # spread over every partition


@pytest.fixture
async def engine(own_database: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(own_database)
    yield engine
    await engine.dispose()


@pytest.fixture
async def ingest(topic_names: KafkaSettings, own_database: DatabaseSettings,
                 engine: AsyncEngine) -> AsyncIterator[tuple[ServiceProcess, str]]:
    async with started_ingest(topic_names, own_database, engine, "restart",
                              POLKU_INGEST_PRODUCE_TIMEOUT_S=str(PRODUCE_TIMEOUT_S)) as started:
        yield started


class Load:
    """Senders posting batches at a steady rate, remembering what was acknowledged."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.acknowledged: dict[str, str] = {}  # messageId -> contact
        self.statuses: Counter[int] = Counter()
        self.last_refusal = ""
        self._running = True

    def batch(self) -> list[dict[str, object]]:
        calls = []
        for _ in range(BATCH):
            message_id = uuid.uuid4().hex
            contact = f"restart-{int(message_id[:6], 16) % CONTACTS}"
            calls.append({"type": "page", "userId": contact, "name": "Pricing",
                          "messageId": message_id})
        return calls

    async def post(self, calls: list[dict[str, object]]) -> int:
        try:
            response = await self.client.post("/v1/batch", json={"batch": calls})
        except httpx.HTTPError:
            self.statuses[0] += 1
            return 0
        self.statuses[response.status_code] += 1
        if response.status_code == 200:
            assert response.json()["accepted"] == len(calls)
            for call in calls:
                self.acknowledged[str(call["messageId"])] = str(call["userId"])
        elif response.status_code == 503:
            self.last_refusal = response.json()["message"]
        else:
            raise AssertionError(f"unexpected {response.status_code}: {response.text}")
        return response.status_code

    async def sender(self) -> None:
        interval = BATCH * SENDERS / EVENTS_PER_S
        while self._running:
            started = time.monotonic()
            await self.post(self.batch())
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    def stop(self) -> None:
        self._running = False


async def acknowledged_within(load: Load, timeout_s: float) -> float:
    """Post one batch as an SDK does (again after each 503); seconds until acknowledged."""
    calls = load.batch()
    started = time.monotonic()
    while await load.post(calls) != 200:
        assert time.monotonic() - started < timeout_s, (
            f"not acknowledged within {timeout_s} s of the broker's return; last refusal: "
            f"{load.last_refusal}")
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def test_ingest_recovers_from_a_broker_restart_under_load_and_loses_nothing(
    ingest: tuple[ServiceProcess, str], topic_names: KafkaSettings, engine: AsyncEngine
) -> None:
    process, key = ingest
    async with httpx.AsyncClient(base_url=process.url, auth=(key, ""), timeout=30,
                                 limits=httpx.Limits(max_connections=SENDERS + 2)) as client:
        load = Load(client)
        senders = [asyncio.create_task(load.sender()) for _ in range(SENDERS)]
        try:
            await asyncio.sleep(3)
            assert load.statuses[200] > 0, load.statuses
            await asyncio.to_thread(local_script, "kafka.sh", "stop")
            try:
                await asyncio.sleep(OUTAGE_S)
            finally:
                await asyncio.to_thread(local_script, "kafka.sh", "start")
            back = time.monotonic()
            while not await broker_reachable(topic_names):
                assert time.monotonic() - back < 60, "the broker did not come back"
            # Posted after the broker is back, while the load goes on.
            took = await acknowledged_within(load, timeout_s=15)
            # And it stays recovered: the load keeps being acknowledged.
            await asyncio.sleep(3)
            before = Counter(load.statuses)
            await asyncio.sleep(3)
            after_recovery = load.statuses - before
        finally:
            load.stop()
            await asyncio.gather(*senders)
        ready = (await client.get("/readyz")).json()
    print(f"statuses {dict(load.statuses)}; last refusal {load.last_refusal!r}")

    assert took < 15
    assert set(after_recovery) == {200}, (after_recovery, load.last_refusal)
    assert ready["status"] == "ready", ready

    records = await read_topic(topic_names, topic_names.touchpoints_topic,
                               expect=len(load.acknowledged), timeout_s=60)
    on_topic = Counter(str(m["messageId"]) for m in payloads(records))
    missing = set(load.acknowledged) - set(on_topic)
    assert not missing, f"{len(missing)} acknowledged events are not on the topic"

    async with running_stager(topic_names, engine, SystemClock()) as running:
        await wait_consumed(engine, topic_names, running.group_id, timeout_s=120)
    async with engine.connect() as conn:
        applied = {(c, m) for c, m in await conn.execute(
            sa.select(processed_messages.c.contact, processed_messages.c.message_id))}
    assert {(contact, m) for m, contact in load.acknowledged.items()} <= applied
    assert len(applied) == len(on_topic)  # each distinct messageId applied once
    print(f"statuses {dict(load.statuses)}; acknowledged {len(load.acknowledged)}; "
          f"duplicates on the topic {sum(on_topic.values()) - len(on_topic)}; "
          f"first request after the broker's return acknowledged in {took:.2f} s")
