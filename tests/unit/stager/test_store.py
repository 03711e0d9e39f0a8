"""The stager's store on the portable backend (a SQLite file): what one batch commits, exactly once.

The PostgreSQL backend runs the same store through tests/integration, tests/e2e and tests/faults.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.stager.offsets import stored_offsets
from services.stager.processing import Record
from services.stager.storage import PortableStorage, PostgresStorage, storage_for
from services.stager.storage.portable import utc_text
from services.stager.store import (
    Partition,
    apply_batch,
    fire_timers,
    pending_outbox,
)
from shared.db.engine import sqlite_engine
from shared.db.migrate import upgrade
from shared.db.read_model import read_contact
from shared.db.tables import Timestamp, contact_states, processed_messages, transitions
from shared.journey import load_journeys
from shared.wire import Topics
from tests.messages import touchpoint
from tests.stager_harness import JOURNEYS

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
WHERE = Partition("stager-test", "touchpoints", 0)
TOPICS = Topics(touchpoints="touchpoints", transitions="transitions",
                dead_letters="dead-letters")
TRIAL = load_journeys(JOURNEYS)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'stager.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = sqlite_engine(url)
    yield engine
    await engine.dispose()


def batch(first_offset: int, *values: dict[str, Any] | bytes) -> list[Record]:
    """Records at consecutive offsets from `first_offset`: touchpoint messages, or raw bytes."""
    return [
        Record(first_offset + i, b"k",
               value if isinstance(value, bytes) else json.dumps(value).encode())
        for i, value in enumerate(values)
    ]


async def path(engine: AsyncEngine, contact: str) -> list[tuple[str | None, str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(transitions.c.from_stage, transitions.c.to_stage, transitions.c.cause)
            .where(transitions.c.contact == contact)
            .order_by(transitions.c.seq)
        )
        return [(r.from_stage, r.to_stage, r.cause) for r in rows]


async def count(engine: AsyncEngine, table: sa.Table) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


async def test_postgresql_gets_its_own_backend_and_everything_else_the_portable_one(
    engine: AsyncEngine,
) -> None:
    postgres = create_async_engine("postgresql+asyncpg://polku@db.invalid/polku")  # not connected
    assert isinstance(storage_for(postgres), PostgresStorage)
    assert isinstance(storage_for(engine), PortableStorage)


async def test_a_batch_applies_each_message_once_and_counts_the_repeats_within_it(
    engine: AsyncEngine,
) -> None:
    page = touchpoint("alice", T0, type="page", name="Pricing", message_id="m-1")
    order = touchpoint("alice", T0 + timedelta(hours=1), event="Order Completed",
                       message_id="m-2")

    result = await apply_batch(engine, WHERE, batch(0, page, page, order), TRIAL, TOPICS)

    assert (result.applied, result.duplicates, result.skipped) == (2, 1, 0)
    assert result.next_offset == 3 and result.dead_letters == []
    assert result.latest_event_at == T0 + timedelta(hours=1)
    assert await path(engine, "alice") == [(None, "aware", "m-1"), ("aware", "customer", "m-2")]
    published = await pending_outbox(engine, WHERE.partition)
    assert [(r.topic, r.key, r.headers) for r in published] == [
        ("transitions", b"alice", None), ("transitions", b"alice", None),
    ]
    assert [json.loads(r.payload or b"")["to"]["id"] for r in published] == ["aware", "customer"]
    assert await stored_offsets(engine, WHERE.group_id, WHERE.topic) == {0: 3}
    assert await count(engine, processed_messages) == 2


async def test_a_message_redelivered_in_a_later_batch_changes_nothing(
    engine: AsyncEngine,
) -> None:
    order = touchpoint("bob", T0, event="Order Completed", message_id="m-1")
    await apply_batch(engine, WHERE, batch(0, order), TRIAL, TOPICS)
    async with engine.connect() as conn:
        before = (await conn.execute(sa.select(contact_states))).all()

    again = await apply_batch(engine, WHERE, batch(1, order), TRIAL, TOPICS)

    assert (again.applied, again.duplicates, again.skipped, again.next_offset) == (0, 1, 0, 2)
    assert await path(engine, "bob") == [(None, "customer", "m-1")]
    assert len(await pending_outbox(engine, WHERE.partition)) == 1
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(contact_states))).all() == before


async def test_a_malformed_record_is_set_aside_as_a_dead_letter_and_the_rest_applies(
    engine: AsyncEngine,
) -> None:
    order = touchpoint("carol", T0, event="Order Completed", message_id="m-1")

    result = await apply_batch(engine, WHERE, batch(0, b"{not json", order), TRIAL, TOPICS)

    assert [(d.offset, d.reason) for d in result.dead_letters] == [(0, "invalid_json")]
    assert (result.applied, result.next_offset) == (1, 2)
    assert await path(engine, "carol") == [(None, "customer", "m-1")]
    dead = [r for r in await pending_outbox(engine, WHERE.partition)
            if r.topic == "dead-letters"]
    assert [(r.key, r.payload) for r in dead] == [(b"k", b"{not json")]
    assert dead[0].headers is not None
    assert dead[0].headers["polku.error.reason"] == "invalid_json"
    assert dead[0].headers["polku.source.offset"] == "0"


async def test_offsets_an_earlier_owner_of_the_partition_applied_are_skipped(
    engine: AsyncEngine,
) -> None:
    records = batch(0, *(touchpoint(f"dave-{i}", T0, event="Order Completed") for i in range(3)))
    await apply_batch(engine, WHERE, records, TRIAL, TOPICS)
    rows = (await count(engine, transitions), len(await pending_outbox(engine, 0)))

    replayed = await apply_batch(engine, WHERE, records, TRIAL, TOPICS)

    assert (replayed.applied, replayed.duplicates, replayed.skipped) == (0, 0, 3)
    assert replayed.next_offset == 3
    assert (await count(engine, transitions), len(await pending_outbox(engine, 0))) == rows

    later = batch(3, touchpoint("erin", T0, event="Order Completed"))
    overlapping = await apply_batch(engine, WHERE, records[1:] + later, TRIAL, TOPICS)

    assert (overlapping.applied, overlapping.skipped, overlapping.next_offset) == (1, 2, 4)
    assert await stored_offsets(engine, WHERE.group_id, WHERE.topic) == {0: 4}


async def test_a_quiet_customer_goes_at_risk_once_when_its_timer_is_due(
    engine: AsyncEngine,
) -> None:
    order = touchpoint("frank", T0, event="Order Completed", message_id="m-1")
    await apply_batch(engine, WHERE, batch(0, order), TRIAL, TOPICS)

    early = await fire_timers(engine, WHERE, TRIAL, T0 + timedelta(days=29), TOPICS)
    due = await fire_timers(engine, WHERE, TRIAL, T0 + timedelta(days=31), TOPICS)
    after = await fire_timers(engine, WHERE, TRIAL, T0 + timedelta(days=32), TOPICS)

    assert (early.transitions, after.transitions) == ([], [])
    assert [(t.from_stage, t.to_stage) for t, _ in due.transitions] == [("customer", "at-risk")]
    assert await path(engine, "frank") == [
        (None, "customer", "m-1"), ("customer", "at-risk", "timer:gone-quiet"),
    ]
    published = await pending_outbox(engine, WHERE.partition)
    assert [json.loads(r.payload or b"")["cause"] for r in published][-1] == {
        "kind": "timer", "rule": "gone-quiet",
    }
    async with engine.connect() as conn:
        stage = await conn.scalar(sa.select(contact_states.c.stage)
                                  .where(contact_states.c.contact == "frank"))
    assert stage == "at-risk"


async def test_what_a_batch_stores_reads_back_through_the_contact_read_model(
    engine: AsyncEngine,
) -> None:
    page = touchpoint("grace", T0, type="page", name="Pricing", message_id="m-1",
                      traits={"plan": "pro"})
    order = touchpoint("grace", T0 + timedelta(hours=1), event="Order Completed",
                       message_id="m-2")
    result = await apply_batch(engine, WHERE, batch(0, page, order), TRIAL, TOPICS)

    [seen] = await read_contact(engine, "grace")

    step = result.changes.states[("trial", "grace")]
    assert step.state is not None and step.state.seen  # the engine's ring, not stored
    assert seen.state == step.state.evolve(seen=())
    assert [(t.from_stage, t.to_stage, t.cause) for t in seen.history] == [
        (None, "aware", "m-1"), ("aware", "customer", "m-2"),
    ]
    assert [t for t, _ in result.changes.transitions] == list(seen.history)
    assert await read_contact(engine, "nobody") == []


@pytest.mark.parametrize("at", [
    T0,
    T0 + timedelta(microseconds=1),
    datetime(2026, 10, 1, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=-2))),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
])
def test_the_sqlite_backend_writes_a_time_as_sqlalchemy_writes_a_timestamp_column(
    at: datetime,
) -> None:
    # The text is what timer sweeps compare and SQLAlchemy parses back: it must be the same.
    dialect = sqlite.dialect()
    assert utc_text(at) == Timestamp.dialect_impl(dialect).bind_processor(dialect)(at)  # type: ignore[misc]
    assert utc_text(None) is None
    with pytest.raises(ValueError):
        utc_text(datetime(2026, 10, 1))


async def test_rows_the_sqlite_backend_writes_read_back_through_sqlalchemy_unchanged(
    engine: AsyncEngine,
) -> None:
    at = T0 + timedelta(milliseconds=123)
    order = touchpoint("heidi", at, event="Order Completed", message_id="m-1")
    records = batch(0, order)
    result = await apply_batch(engine, WHERE, records, TRIAL, TOPICS)
    [(transition, _)] = result.changes.transitions
    step = result.changes.states[("trial", "heidi")]
    assert step.state is not None and step.next_deadline is not None
    async with engine.connect() as conn:
        stored = (await conn.execute(sa.select(contact_states))).one()
        moved = (await conn.execute(sa.select(transitions))).one()
        journaled = (await conn.execute(sa.select(processed_messages))).one()
    assert (stored.stage, stored.stage_entered_at, stored.journey_entered_at,
            stored.timer_due_at) == ("customer", at, at, step.next_deadline)
    assert (moved.transition_id, moved.at, moved.contact_entered_at, moved.seq) == (
        transition.transition_id, at, at, 1)
    assert (journaled.contact, journaled.at, journaled.identified, journaled.message) == (
        "heidi", at, True, records[0].value)
