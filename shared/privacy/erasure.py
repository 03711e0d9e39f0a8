"""Erasing a person: every row Polku keeps about them, in ONE transaction, with a receipt.

A person is an id and every id linked to it (`contact_links`: the canonical contact an alias
belongs to, and every alias of that canonical). In one transaction, per person:

- the stager's state goes: contact states, transitions, the touchpoint journal (dedupe rows),
  links, refused links naming any of the ids, outbox rows keyed by one of them;
- their webhook deliveries stay as counts only: pending ones are cancelled (the dispatcher
  claims only pending ones, and a running attempt can no longer record its result), and every
  one loses its body, headers and last error, its contact replaced by the id's salted hash;
- in the embedded mode, the log's records keyed by one of the ids, on every topic;
- every id goes on the suppression list, and the receipt is stored.

The transaction first locks the offset row of every partition of the touchpoints topic (the
rows the stager's batches lock, services/stager/store.py), so no batch runs beside it: an event
of the person the stager had read but not applied is applied before the erase (and erased with
the rest) or after it (and dropped as suppressed). An advisory lock keeps the actions worker
from creating a delivery beside it (suppression.py). A crash leaves the person untouched, a
commit leaves them wholly erased; erasing again finds nothing and reports zero counts.

Kafka cannot delete one record: the person's records on the topics stay until the topics'
retention removes them, and the receipt says when (`kafka_expires_at`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db.tables import (
    consumer_offsets,
    contact_links,
    contact_states,
    erasure_receipts,
    identity_conflicts,
    log_records,
    outbox,
    processed_messages,
    transitions,
    webhook_deliveries,
)
from shared.privacy.ids import id_hash, installation_salt
from shared.privacy.suppression import lock_out_writers, suppress

# What the receipt counts, in the order it lists them.
STORES = ("contact_states", "transitions", "journal", "contact_links", "identity_conflicts",
          "outbox", "deliveries_cancelled", "delivery_bodies_erased", "log_records")
# The status an erase gives a pending delivery; services/actions/store.py never sends it.
CANCELLED = "cancelled"
ERASED_BODY = '{"erased":true}'
# Kafka deletes a closed segment at most this long after it is due (the broker's
# log.retention.check.interval.ms, 5 minutes by default).
RETENTION_CHECK = timedelta(minutes=5)


@dataclass(frozen=True)
class ErasureStores:
    """Where an erase looks: the touchpoints topic whose offset rows it locks, and how long
    Kafka may keep a record (None: no broker, the embedded mode)."""

    touchpoints_topic: str
    kafka_keeps_records: timedelta | None


def kafka_expiry(retention: timedelta, segment: timedelta, ingest_refresh: timedelta
                 ) -> timedelta:
    """The longest a record of an erased person may stay on a topic: Kafka deletes whole closed
    segments, so a record lives for the retention after its segment rolls, plus the broker's
    check interval; and ingest may still write the person's events until it reloads its
    suppression list (`ingest_refresh` after the erase)."""
    return ingest_refresh + retention + segment + RETENTION_CHECK


@dataclass(frozen=True)
class Receipt:
    """Proof of one erase, without personal data."""

    id: str
    erased_at: datetime
    id_hashes: list[str]
    removed: Mapping[str, int] = field(default_factory=dict)
    kafka_expires_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "receipt_id": self.id,
            "erased_at": self.erased_at.isoformat(),
            "id_hashes": list(self.id_hashes),
            "removed": {name: int(self.removed.get(name, 0)) for name in STORES},
            "kafka_expires_at": (self.kafka_expires_at.isoformat()
                                 if self.kafka_expires_at is not None else None),
            "suppressed": True,
        }


async def erase_person(engine: AsyncEngine, contact_id: str, stores: ErasureStores,
                       now: datetime) -> Receipt:
    """Erase the person behind `contact_id` (see the module docstring); returns the receipt,
    also stored in `erasure_receipts`."""
    receipt_id = "er_" + uuid.uuid4().hex
    sqlite = engine.dialect.name == "sqlite"
    async with engine.connect() as conn:
        try:
            async with conn.begin():
                await _lock_stager(conn, stores.touchpoints_topic)
                await lock_out_writers(conn)
                ids = await _linked_ids(conn, contact_id)
                salt = await installation_salt(conn)
                hashes = {i: id_hash(salt, i) for i in sorted(ids)}
                removed = await _remove(conn, ids, hashes, sqlite)
                await suppress(conn, hashes.values(), receipt_id, now)
                receipt = Receipt(
                    receipt_id, now, sorted(hashes.values()), removed,
                    now + stores.kafka_keeps_records
                    if stores.kafka_keeps_records is not None else None)
                await conn.execute(sa.insert(erasure_receipts).values(
                    id=receipt.id, erased_at=receipt.erased_at, id_hashes=receipt.id_hashes,
                    removed=dict(receipt.removed), kafka_expires_at=receipt.kafka_expires_at))
        finally:
            if sqlite:
                # The file overwrites deleted rows with zeros (shared/db/engine.py); the
                # write-ahead log still holds older copies of their pages until a checkpoint
                # has copied the new ones over them and emptied it.
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                await conn.commit()
    return receipt


async def get_receipt(engine: AsyncEngine, receipt_id: str) -> Receipt | None:
    async with engine.connect() as conn:
        row = (await conn.execute(
            sa.select(erasure_receipts).where(erasure_receipts.c.id == receipt_id)
        )).first()
    if row is None:
        return None
    return Receipt(row.id, row.erased_at, list(row.id_hashes), dict(row.removed),
                   row.kafka_expires_at)


async def _lock_stager(conn: AsyncConnection, topic: str) -> None:
    """Lock the offset row of every partition of the touchpoints topic, whatever group reads
    it (the stager's, `POLKU_STAGER_GROUP_ID`, or a second one replaying the topic).

    SQLite has no row locks: there a write that changes nothing takes the file's write lock at
    once, so another process's commit cannot slip in between this transaction's reads and its
    writes (in `polku dev` itself every statement shares one connection anyway).
    """
    mine = consumer_offsets.c.topic == topic
    if conn.dialect.name == "sqlite":
        await conn.execute(sa.update(consumer_offsets).where(mine)
                           .values(next_offset=consumer_offsets.c.next_offset))
        return
    await conn.execute(
        sa.select(consumer_offsets.c.partition).where(mine)
        .order_by(consumer_offsets.c.group_id, consumer_offsets.c.partition)
        .with_for_update()
    )


async def _linked_ids(conn: AsyncConnection, contact_id: str) -> set[str]:
    """The id, its canonical contact if it is an alias, and every alias of that canonical."""
    canonical = (await conn.execute(
        sa.select(contact_links.c.canonical).where(contact_links.c.alias == contact_id)
    )).scalar_one_or_none() or contact_id
    aliases = (await conn.execute(
        sa.select(contact_links.c.alias).where(contact_links.c.canonical == canonical)
    )).scalars()
    return {contact_id, canonical, *aliases}


async def _remove(conn: AsyncConnection, ids: set[str], hashes: Mapping[str, str],
                  sqlite: bool) -> dict[str, int]:
    listed = sorted(ids)

    async def count(statement: Any) -> int:
        return int((await conn.execute(statement)).rowcount or 0)

    removed = {
        "contact_states": await count(
            sa.delete(contact_states).where(contact_states.c.contact.in_(listed))),
        "transitions": await count(
            sa.delete(transitions).where(transitions.c.contact.in_(listed))),
        "journal": await count(
            sa.delete(processed_messages).where(processed_messages.c.contact.in_(listed))),
        "contact_links": await count(
            sa.delete(contact_links).where(sa.or_(contact_links.c.alias.in_(listed),
                                                  contact_links.c.canonical.in_(listed)))),
        "identity_conflicts": await count(
            sa.delete(identity_conflicts).where(sa.or_(identity_conflicts.c.contact.in_(listed),
                                                       identity_conflicts.c.other.in_(listed)))),
        "outbox": await count(
            sa.delete(outbox).where(outbox.c.key.in_([i.encode() for i in listed]))),
        "deliveries_cancelled": await count(
            sa.update(webhook_deliveries)
            .where(webhook_deliveries.c.contact.in_(listed),
                   webhook_deliveries.c.status == "pending")
            .values(status=CANCELLED, lease_until=None, claim_token=None)),
        "delivery_bodies_erased": 0,
        "log_records": 0,
    }
    for contact_id in listed:
        removed["delivery_bodies_erased"] += await count(
            sa.update(webhook_deliveries)
            .where(webhook_deliveries.c.contact == contact_id)
            .values(contact=hashes[contact_id], payload=ERASED_BODY, headers={},
                    last_error=None, lease_until=None, claim_token=None))
    if sqlite:  # the embedded log lives in the same file (migration 0004)
        removed["log_records"] = await count(
            sa.delete(log_records).where(log_records.c.key.in_([i.encode() for i in listed])))
    return removed
