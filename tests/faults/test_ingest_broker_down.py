"""Broker down: ingest answers 503 + Retry-After within its deadline, and loses nothing acked.

Stops the shared local broker (deploy/local/kafka.sh serialises this with other tests) and
always starts it again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.sources import create_source
from shared.settings import DatabaseSettings, KafkaSettings
from tests.processes import ServiceProcess, local_script, service_env, started_ingest
from tests.stager_harness import payloads, read_topic

PRODUCE_TIMEOUT_S = 3.0


@pytest.fixture
async def ingest(topic_names: KafkaSettings, database_settings: DatabaseSettings,
                 engine: AsyncEngine) -> AsyncIterator[tuple[ServiceProcess, str]]:
    async with started_ingest(topic_names, database_settings, engine, "fault",
                              POLKU_INGEST_PRODUCE_TIMEOUT_S=str(PRODUCE_TIMEOUT_S)) as started:
        yield started


class Sender:
    """Posts small batches with unique messageIds and remembers which were acknowledged."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.acknowledged: set[str] = set()

    async def post(self, events: int = 10) -> tuple[httpx.Response, float]:
        ids = [uuid.uuid4().hex for _ in range(events)]
        batch = [{"type": "track", "userId": f"fault-{i % 4}", "event": "Order Completed",
                  "messageId": message_id} for i, message_id in enumerate(ids)]
        started = time.monotonic()
        response = await self.client.post("/v1/batch", json={"batch": batch})
        took = time.monotonic() - started
        if response.status_code == 200:
            assert response.json()["accepted"] == events
            self.acknowledged.update(ids)
        return response, took


async def test_broker_down_gives_prompt_503s_and_acknowledged_events_survive(
    ingest: tuple[ServiceProcess, str], topic_names: KafkaSettings
) -> None:
    process, key = ingest
    async with httpx.AsyncClient(base_url=process.url, auth=(key, ""), timeout=30) as client:
        sender = Sender(client)
        for _ in range(5):
            response, _ = await sender.post()
            assert response.status_code == 200, response.text

        await asyncio.to_thread(local_script, "kafka.sh", "stop")
        try:
            # Several clients at once: none may hang past the produce deadline.
            outcomes = await asyncio.gather(*(sender.post() for _ in range(8)))
            outcomes += [await sender.post() for _ in range(3)]
            for response, took in outcomes:
                assert response.status_code == 503, response.text
                assert took < PRODUCE_TIMEOUT_S + 2
                assert int(response.headers["Retry-After"]) >= 1
                body = response.json()
                assert body["field"] == "kafka" and "retry" in body["message"]
        finally:
            await asyncio.to_thread(local_script, "kafka.sh", "start")

        # Back: requests succeed again once the producer has reconnected.
        deadline = time.monotonic() + 90
        while True:
            response, _ = await sender.post()
            if response.status_code == 200:
                break
            assert response.status_code == 503, response.text
            assert time.monotonic() < deadline, "ingest did not recover after the broker restart"
            await asyncio.sleep(1)
        for _ in range(5):
            response, _ = await sender.post()
            assert response.status_code == 200, response.text

    records = await read_topic(topic_names, topic_names.touchpoints_topic,
                               expect=len(sender.acknowledged), timeout_s=60)
    on_topic = {message["messageId"] for message in payloads(records)}
    assert sender.acknowledged <= on_topic, f"lost {len(sender.acknowledged - on_topic)}"


async def test_ingest_started_without_a_broker_answers_503_until_it_comes(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine
) -> None:
    _, key = await create_source(engine, f"fault-{uuid.uuid4().hex[:6]}")
    env = service_env(topic_names, database_settings,
                      POLKU_INGEST_PRODUCE_TIMEOUT_S=str(PRODUCE_TIMEOUT_S))
    await asyncio.to_thread(local_script, "kafka.sh", "stop")
    process = ServiceProcess("ingest", env).start()
    try:
        try:
            # Alive and serving, but not ready, and honest about why it refuses events.
            await asyncio.to_thread(process.wait_status, "/healthz", 200, 60)
            await asyncio.to_thread(process.wait_status, "/readyz", 503, 5)
            async with httpx.AsyncClient(base_url=process.url, auth=(key, ""),
                                         timeout=30) as client:
                response, took = await Sender(client).post()
            assert response.status_code == 503, response.text
            assert took < PRODUCE_TIMEOUT_S + 2
            assert int(response.headers["Retry-After"]) >= 1
        finally:
            await asyncio.to_thread(local_script, "kafka.sh", "start")

        await asyncio.to_thread(process.wait_status, "/readyz", 200, 90)
        async with httpx.AsyncClient(base_url=process.url, auth=(key, ""), timeout=30) as client:
            sender = Sender(client)
            deadline = time.monotonic() + 60
            while (response := (await sender.post())[0]).status_code != 200:
                assert response.status_code == 503, response.text
                assert time.monotonic() < deadline, "ingest never connected to the broker"
                await asyncio.sleep(1)
    finally:
        process.kill()

    records = await read_topic(topic_names, topic_names.touchpoints_topic,
                               expect=len(sender.acknowledged), timeout_s=60)
    assert sender.acknowledged <= {message["messageId"] for message in payloads(records)}
