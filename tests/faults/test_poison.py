"""No single record can stop a partition: what cannot be applied is dead-lettered, the rest
applied. Records are written straight onto the topic, as a producer other than ingest could."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clock import ManualClock
from shared.db.engine import make_engine
from shared.db.tables import contact_states
from shared.settings import DatabaseSettings, KafkaSettings
from tests.messages import iso, touchpoint
from tests.stager_harness import read_topic, running_stager

FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)


@pytest.fixture
async def engine(own_database: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(own_database)
    yield engine
    await engine.dispose()


def poisons(now: datetime) -> list[tuple[dict[str, Any], str]]:
    """Records no stager can apply, each with the reason it must be dead-lettered for."""
    ahead = touchpoint("poison-ahead", FAR_FUTURE, event="Order Completed")
    ahead["receivedAt"] = iso(now)  # the reader refuses an event time a day past arrival
    overflow = touchpoint("poison-overflow", FAR_FUTURE, event="Order Completed")
    # Past the reader's check, the engine overflows computing the 30-day inactivity deadline.
    return [
        (ahead, "invalid_field"),
        (overflow, "processing_failed"),
        (touchpoint("nul\x00contact", now, event="Order Completed"), "database_rejected"),
        # Too long for a B-tree index entry, even compressed.
        (touchpoint(secrets.token_urlsafe(30_000), now, type="page", name="Blog"),
         "database_rejected"),
    ]


async def stage_of(engine: AsyncEngine, contact: str) -> str | None:
    async with engine.connect() as conn:
        return await conn.scalar(sa.select(contact_states.c.stage).where(
            contact_states.c.contact == contact, contact_states.c.journey_id == "trial"))


async def test_poison_records_are_dead_lettered_and_the_events_behind_them_applied(
    topic_names: KafkaSettings, engine: AsyncEngine
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    bad = poisons(now)
    before = touchpoint("poison-before", now, event="Order Completed")
    after = touchpoint("poison-after", now, event="Order Completed")
    # All on one partition, in this order: the poisons sit between two valid events.
    records = [before, *(m for m, _ in bad), after]
    producer = AIOKafkaProducer(bootstrap_servers=topic_names.bootstrap_servers, acks="all")
    async with running_stager(topic_names, engine, ManualClock(now)):
        await producer.start()
        try:
            for message in records:
                await producer.send_and_wait(topic_names.touchpoints_topic,
                                             json.dumps(message).encode(), key=b"one-key",
                                             partition=0)
        finally:
            await producer.stop()
        started = time.monotonic()
        while await stage_of(engine, "poison-after") is None:
            assert time.monotonic() - started < 20, "the event behind the poisons never applied"
            await asyncio.sleep(0.1)
    assert await stage_of(engine, "poison-before") == "customer"
    dead = await read_topic(topic_names, topic_names.dead_letter_topic, len(bad))
    assert [r.value for r in dead] == [json.dumps(m).encode() for m, _ in bad]
    headers = [{k: v.decode() for k, v in r.headers} for r in dead]
    assert [h["polku.error.reason"] for h in headers] == [reason for _, reason in bad]
    assert [int(h["polku.source.offset"]) for h in headers] == [1, 2, 3, 4]
    assert "timestamp" in headers[0]["polku.error"]
    assert headers[1]["polku.error"] == "OverflowError: date value out of range"
