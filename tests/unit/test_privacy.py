"""Erasure and suppression on the portable backend (a SQLite file, as the embedded mode runs).

The same code runs on PostgreSQL in tests/e2e/test_privacy.py and tests/faults/test_erase_crash.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from services.actions import store as deliveries_store
from services.actions.deliveries import PlannedDelivery
from services.stager.processing import Record
from services.stager.store import Partition, apply_batch
from shared.db.engine import sqlite_engine
from shared.db.migrate import upgrade
from shared.db.tables import (
    contact_links,
    contact_states,
    identity_conflicts,
    log_records,
    metadata,
    suppressions,
    webhook_deliveries,
)
from shared.embedded_log import EmbeddedLog
from shared.journey import load_journeys
from shared.privacy import (
    ErasureStores,
    SuppressionList,
    erase_person,
    get_receipt,
    id_hash,
    installation_salt,
    unsuppress,
)
from shared.streams import OutRecord
from shared.wire import Topics
from tests.messages import touchpoint
from tests.stager_harness import JOURNEYS

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
TOPICS = Topics(touchpoints="touchpoints", transitions="transitions",
                dead_letters="dead-letters")
WHERE = Partition("polku-stager", TOPICS.touchpoints, 0)
TRIAL = load_journeys(JOURNEYS)
STORES = ErasureStores(TOPICS.touchpoints, kafka_keeps_records=None)
USER, ANON, OTHER = "canary-user-7f3a", "canary-anon-7f3a", "bystander-7f3a"
EMAIL = "canary.7f3a@example.com"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'polku.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = sqlite_engine(url)
    yield engine
    await engine.dispose()


def records(first_offset: int, *messages: dict[str, Any]) -> list[Record]:
    return [Record(first_offset + i, m["contact"].encode(), json.dumps(m).encode())
            for i, m in enumerate(messages)]


def canary_touchpoint(at: datetime, contact: str = USER, **fields: Any) -> dict[str, Any]:
    message = touchpoint(contact, at, event="Order Completed",
                         context={"traits": {"email": EMAIL}})
    message.update(userId=USER if contact == USER else None, anonymousId=ANON, **fields)
    return message


def planned(contact: str, n: int, payload: str) -> PlannedDelivery:
    # Ids as the actions worker derives them: hashes, never the contact itself.
    tag = hashlib.sha256(f"{contact}/{n}".encode()).hexdigest()[:16]
    return PlannedDelivery(f"msg_{tag}", f"t-{tag}", "ep_test",
                           "https://crm.example/hooks", "trial", contact, payload, None, None,
                           {"X-Contact": contact})


def file_bytes(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in directory.glob("polku.db*"))


async def dump(engine: AsyncEngine) -> str:
    """Every row of every table, as text."""
    rows: list[str] = []
    async with engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows.extend(repr(row) for row in await conn.execute(sa.select(table)))
    return "\n".join(rows)


async def seed_canary(engine: AsyncEngine) -> None:
    """Two ids of one person (linked), states, transitions, journal rows, deliveries (one
    pending, one delivered), a refused link and log records; and a bystander."""
    await apply_batch(engine, WHERE, records(
        0, canary_touchpoint(T0, contact=ANON), canary_touchpoint(T0 + timedelta(hours=1)),
        touchpoint(OTHER, T0, event="Order Completed")), TRIAL, TOPICS)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(sa.insert(contact_links).values(
            alias=ANON, canonical=USER, kind="identify", cause="m-link", linked_at=T0))
        await conn.execute(sa.insert(identity_conflicts).values(
            contact="someone-else", other=ANON, reason="already_linked", cause="m-x", at=T0))
    body = json.dumps({"contact": USER, "traits": {"email": EMAIL}})
    await deliveries_store.create_deliveries(engine, [
        planned(USER, 1, body), planned(USER, 2, body), planned(OTHER, 1, '{"contact":"b"}'),
    ], now)
    async with engine.begin() as conn:
        await conn.execute(sa.update(webhook_deliveries)
                           .where(webhook_deliveries.c.id == planned(USER, 2, "").id)
                           .values(status="delivered", delivered_at=now))
    await EmbeddedLog(engine).write([
        OutRecord(TOPICS.transitions, USER.encode(), json.dumps({"contact": USER}).encode()),
        OutRecord(TOPICS.touchpoints, OTHER.encode(), b"{}"),
    ])


async def test_an_erase_removes_every_row_of_every_id_of_the_person_and_nothing_else(
    engine: AsyncEngine, tmp_path: Path,
) -> None:
    await seed_canary(engine)
    before = await dump(engine)
    assert USER in before and ANON in before and EMAIL in before

    receipt = await erase_person(engine, ANON, STORES, datetime.now(UTC))  # by the alias

    removed = dict(receipt.removed)
    assert removed["contact_states"] >= 2 and removed["transitions"] >= 2
    assert removed["journal"] == 2 and removed["contact_links"] == 1
    assert removed["identity_conflicts"] == 1 and removed["outbox"] >= 2
    assert removed["deliveries_cancelled"] == 1 and removed["delivery_bodies_erased"] == 2
    assert removed["log_records"] == 1
    assert receipt.kafka_expires_at is None  # no broker: the log's records are gone already
    after = await dump(engine)
    for canary in (USER, ANON, EMAIL):
        assert canary not in after
    assert OTHER in after  # the bystander is untouched
    # Nor in the file's bytes: free space and the write-ahead log included.
    files = await asyncio.to_thread(file_bytes, tmp_path)
    assert OTHER.encode() in files
    for canary in (USER, ANON, EMAIL):
        assert canary.encode() not in files
    async with engine.connect() as conn:
        salt = await installation_salt(conn)
        listed = set((await conn.execute(sa.select(suppressions.c.id_hash))).scalars())
        erased = sorted((await conn.execute(
            sa.select(webhook_deliveries.c.contact, webhook_deliveries.c.status,
                      webhook_deliveries.c.payload)
            .where(webhook_deliveries.c.contact != OTHER)
        )).all())
        kept = (await conn.execute(sa.select(log_records.c.key))).scalars().all()
    assert listed == {id_hash(salt, USER), id_hash(salt, ANON)}
    assert sorted(receipt.id_hashes) == sorted(listed)
    hashed = id_hash(salt, USER)
    assert erased == [(hashed, "cancelled", '{"erased":true}'),
                      (hashed, "delivered", '{"erased":true}')]
    assert kept == [OTHER.encode()]
    stored = await get_receipt(engine, receipt.id)
    assert stored is not None and stored.as_json() == receipt.as_json()

    again = await erase_person(engine, USER, STORES, datetime.now(UTC))
    assert sum(again.removed.values()) == 0 and again.id_hashes == [id_hash(salt, USER)]


async def test_a_cancelled_delivery_is_never_claimed_retried_nor_created_again(
    engine: AsyncEngine,
) -> None:
    await seed_canary(engine)
    await erase_person(engine, USER, STORES, datetime.now(UTC))
    later = datetime.now(UTC) + timedelta(days=1)

    _, claimed = await deliveries_store.claim_due(
        engine, now=later, lease_until=later + timedelta(minutes=1), slots={},
        default_slots=10, total=10)
    assert [d.contact for d in claimed] == [OTHER]
    async with engine.connect() as conn:
        cancelled = (await conn.execute(sa.select(webhook_deliveries.c.id).where(
            webhook_deliveries.c.status == "cancelled"))).scalars().all()
    assert len(cancelled) == 1
    with pytest.raises(deliveries_store.DeliveryConflict):
        await deliveries_store.retry_delivery(engine, cancelled[0], later)
    # A transition of the person still on the log makes no delivery.
    created = await deliveries_store.create_deliveries(
        engine, [planned(USER, 3, "{}"), planned(OTHER, 3, "{}")], later)
    assert [p.contact for p in created] == [OTHER]


async def test_the_stager_drops_a_suppressed_touchpoint_until_the_id_is_unsuppressed(
    engine: AsyncEngine,
) -> None:
    await erase_person(engine, USER, STORES, datetime.now(UTC))
    # An anonymous event naming the erased userId as previousId is dropped too.
    late = canary_touchpoint(T0, contact=ANON, previousId=USER)
    result = await apply_batch(engine, WHERE, records(0, late, canary_touchpoint(T0)),
                               TRIAL, TOPICS)
    assert (result.applied, result.suppressed, result.next_offset) == (0, 2, 2)
    assert USER not in await dump(engine)

    assert list((await unsuppress(engine, [USER])).values()) == [True]
    again = await apply_batch(engine, WHERE, records(2, canary_touchpoint(T0)), TRIAL, TOPICS)
    assert (again.applied, again.suppressed) == (1, 0)
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(contact_states.c.contact))).scalars().all() == [USER]
    assert list((await unsuppress(engine, [USER])).values()) == [False]


async def test_ingests_copy_of_the_list_matches_any_id_of_a_call(engine: AsyncEngine) -> None:
    copy = SuppressionList(engine, refresh_s=1)
    await copy.refresh()
    assert copy.hashes == frozenset()
    await erase_person(engine, "42", STORES, datetime.now(UTC))
    await copy.refresh()
    assert len(copy.hashes) == 1
    assert copy.covers({"userId": 42})  # SDKs may send integer ids
    assert copy.covers({"userId": "x", "previousId": "42"})
    assert not copy.covers({"userId": "x", "anonymousId": "y", "previousId": ""})


async def test_the_embedded_log_never_hands_out_an_offset_a_consumer_has_read_past(
    engine: AsyncEngine,
) -> None:
    log = EmbeddedLog(engine)
    await log.write([OutRecord(TOPICS.touchpoints, OTHER.encode(), b"{}"),
                     OutRecord(TOPICS.touchpoints, USER.encode(), b"{}")])
    await log.consumer("polku-stager").commit({TopicPartition(TOPICS.touchpoints, 0): 2})
    await erase_person(engine, USER, STORES, datetime.now(UTC))  # deletes the newest record

    restarted = EmbeddedLog(engine)  # a new process learns the end from the file
    assert await restarted.end_offset(TOPICS.touchpoints, 0) == 2
    await restarted.write([OutRecord(TOPICS.touchpoints, OTHER.encode(), b"{}")])
    read = await restarted.read(TOPICS.touchpoints, 0, 2, 10)
    assert [r.offset for r in read] == [2]
