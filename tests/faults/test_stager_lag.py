"""Timers follow the stream: a stager that is behind does not declare quiet a contact whose
newer touchpoints it has not read yet (the stream-time rule of docs/stager.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clock import SystemClock
from shared.db.engine import make_engine
from shared.db.tables import transitions
from shared.settings import DatabaseSettings, KafkaSettings
from tests.messages import produce, touchpoint
from tests.stager_harness import running_stager, wait_consumed

QUIET_AFTER = timedelta(seconds=60)
JOURNEY = f"""
id: lag
version: 1
labels: {{fi: Viive, en: Lag}}
stages:
  - {{id: active, labels: {{fi: Aktiivinen, en: Active}}}}
  - {{id: at-risk, labels: {{fi: Vaarassa, en: At risk}}}}
rules:
  - id: gone-quiet
    from: [active]
    to: at-risk
    when: {{inactive_for: {int(QUIET_AFTER.total_seconds())}s}}
  - id: came-back
    from: [at-risk]
    to: active
    when: {{type: track}}
"""


async def eventually_fired(engine: AsyncEngine) -> list[tuple[str, datetime]]:
    """The inactivity transitions, once the first has been recorded (or after 10 s)."""
    for _ in range(100):
        async with engine.connect() as conn:
            fired = (await conn.execute(
                sa.select(transitions.c.contact, transitions.c.at)
                .where(transitions.c.rule_id == "gone-quiet")
            )).all()
        if fired:
            return [(c, at) for c, at in fired]
        await asyncio.sleep(0.1)
    return []


@pytest.fixture
async def engine(own_database: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(own_database)
    yield engine
    await engine.dispose()


async def test_a_lagging_stager_fires_no_timer_for_contacts_active_in_the_unread_backlog(
    topic_names: KafkaSettings, engine: AsyncEngine, tmp_path: Path
) -> None:
    (tmp_path / "lag.yaml").write_text(JOURNEY)
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(seconds=200)
    # While no stager runs, 20 contacts post every 5 s for 195 s (never 60 s quiet), and one
    # contact posts once at the start and then stays quiet.
    backlog = [touchpoint("lag-quiet", start, event="Logged In")]
    for step in range(40):
        at = start + timedelta(seconds=5 * step)
        backlog += [touchpoint(f"lag-active-{i}", at, event="Logged In") for i in range(20)]
    producer = AIOKafkaProducer(bootstrap_servers=topic_names.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await produce(producer, topic_names.touchpoints_topic, backlog)
    finally:
        await producer.stop()

    # Small batches and a sweep after every poll: the backlog takes many rounds to read, and
    # timers are looked at between every two of them, as in a stager a day behind.
    async with running_stager(topic_names, engine, SystemClock(), tmp_path, max_batch=5,
                              timer_interval_s=0.0, fetch_min_bytes=1) as run:
        await wait_consumed(engine, topic_names, run.group_id, timeout_s=50)
        fired = await eventually_fired(engine)
    assert datetime.now(UTC) < now + QUIET_AFTER - timedelta(seconds=5), "too slow to tell"
    # The quiet contact moved, stamped when its silence reached 60 s; nobody else did.
    assert fired == [("lag-quiet", start + QUIET_AFTER)]
