"""A Kafka producer that can no longer produce is replaced, and the request still acknowledged.

On the real broker: the producer is put in the state a broker restart can leave it in (a gap
in a partition's sequence numbers, which is what a batch failed unsent after taking its
sequence numbers leaves: the broker then refuses every later batch of that partition with
OutOfOrderSequenceNumber), or its sender task is stopped. tests/faults/test_ingest_broker_restart.py
restarts the broker itself under load.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.publish import KafkaPublisher
from services.ingest.settings import IngestSettings
from services.ingest.sources import create_source
from shared.settings import DatabaseSettings, KafkaSettings
from tests.ingest_app import basic, ingest_app, published


@pytest.fixture
async def app(topic_names: KafkaSettings, database_settings: DatabaseSettings
              ) -> AsyncIterator[FastAPI]:
    app = ingest_app(topic_names, database_settings, IngestSettings(produce_timeout_s=5))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    _, key = await create_source(engine, f"producer-{uuid.uuid4().hex[:6]}")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://ingest", headers=basic(key)) as client:
        yield client


def publisher_of(app: FastAPI) -> KafkaPublisher:
    publisher = app.state.intake.publisher
    assert isinstance(publisher, KafkaPublisher)
    return publisher


def leave_a_sequence_gap(producer: AIOKafkaProducer, kafka: KafkaSettings) -> None:
    """What a batch failed after taking its sequence numbers leaves behind."""
    manager = producer._txn_manager  # the state a broker restart corrupts
    for partition in range(kafka.partitions):
        manager.increment_sequence_number(TopicPartition(kafka.touchpoints_topic, partition), 5)


def batch(tag: str, events: int = 6) -> dict[str, object]:
    return {"batch": [{"type": "track", "userId": f"c-{i}", "event": "E",
                       "messageId": f"{tag}-{i}"} for i in range(events)]}


async def test_a_producer_refused_for_out_of_order_sequences_is_replaced_once_for_all_requests(
    app: FastAPI, client: httpx.AsyncClient, topic_names: KafkaSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert (await client.post("/v1/batch", json=batch("before"))).status_code == 200
    publisher = publisher_of(app)
    finished = publisher.producer
    assert finished is not None
    leave_a_sequence_gap(finished, topic_names)

    with caplog.at_level(logging.WARNING, logger="polku.ingest"):
        answers = await asyncio.gather(*(client.post("/v1/batch", json=batch(f"after-{n}"))
                                         for n in range(20)))
    assert [a.status_code for a in answers] == [200] * 20, answers[0].text
    assert publisher.producer is not finished
    replaced = [r for r in caplog.records if "starting a new one" in r.getMessage()]
    assert len(replaced) == 1, [r.getMessage() for r in caplog.records]
    assert "OutOfOrderSequenceNumber" in replaced[0].getMessage()
    assert (await client.get("/readyz")).json()["checks"]["producer"] is True

    on_topic = {m["messageId"] for _, m in await published(topic_names)}
    expected = {f"{tag}-{i}" for tag in ["before", *(f"after-{n}" for n in range(20))]
                for i in range(6)}
    assert expected <= on_topic


async def test_readiness_reports_a_producer_that_cannot_produce_until_it_is_replaced(
    app: FastAPI, client: httpx.AsyncClient, topic_names: KafkaSettings,
) -> None:
    assert (await client.post("/v1/batch", json=batch("before"))).status_code == 200
    publisher = publisher_of(app)
    assert publisher.producer is not None
    sender = publisher.producer._sender.sender_task  # stop it as a crash would
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)

    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["producer"] is False

    assert (await client.post("/v1/batch", json=batch("after"))).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    on_topic = {m["messageId"] for _, m in await published(topic_names)}
    assert {f"after-{i}" for i in range(6)} <= on_topic
