"""Embedded mode: the stager loop on the embedded log dead-letters what it cannot apply and
moves on (before, the engine's overflow took the whole `polku dev` process down)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from services.stager.consumer import Stager
from services.stager.settings import StagerSettings
from shared.clock import ManualClock
from shared.db.engine import make_engine
from shared.db.migrate import upgrade
from shared.db.tables import contact_states
from shared.embedded_log import EmbeddedLog
from shared.journey import load_journeys
from shared.settings import DatabaseSettings, TopicSettings
from shared.streams import OutRecord
from tests.messages import touchpoint
from tests.stager_harness import JOURNEYS


async def test_the_embedded_stager_dead_letters_a_poison_and_applies_what_follows(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'polku.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = make_engine(DatabaseSettings(url_override=url))
    topics = TopicSettings()
    log = EmbeddedLog(engine, partitions=1)
    now = datetime.now(UTC)
    overflow = touchpoint("embedded-poison", datetime(9999, 12, 31, tzinfo=UTC),
                          event="Order Completed")
    valid = touchpoint("embedded-after", now, event="Order Completed")
    await log.write([
        OutRecord(topics.touchpoints_topic, b"k", json.dumps(overflow).encode()),
        OutRecord(topics.touchpoints_topic, b"k", b"{not json"),
        OutRecord(topics.touchpoints_topic, b"k", json.dumps(valid).encode()),
    ])
    settings = StagerSettings(poll_timeout_ms=50)
    stager = Stager(log.consumer(settings.group_id), log, engine, settings, topics.topics,
                    load_journeys(JOURNEYS), ManualClock(now))
    running = asyncio.create_task(stager.run())
    try:
        deadline = time.monotonic() + 10
        while True:
            async with engine.connect() as conn:
                stage = await conn.scalar(sa.select(contact_states.c.stage).where(
                    contact_states.c.contact == "embedded-after"))
            if stage is not None or running.done():
                break
            assert time.monotonic() < deadline, "the event behind the poison never applied"
            await asyncio.sleep(0.05)
        assert not running.done(), running.exception()
        assert stage == "customer"
        # The outbox is published right after the commit that applied the later event.
        dead = await log.read(topics.dead_letter_topic, 0, 0, 10)
        while len(dead) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            dead = await log.read(topics.dead_letter_topic, 0, 0, 10)
    finally:
        stager.stop()
        await asyncio.wait_for(running, 10)
        await engine.dispose()
    assert [(r.value, r.headers["polku.error.reason"]) for r in dead if r.headers] == [
        (json.dumps(overflow).encode(), "processing_failed"),
        (b"{not json", "invalid_json"),
    ]
