"""The suppression list: ids whose events Polku drops, kept as salted hashes (ids.py).

Every erased id goes on it (erasure.py), in the erase's own transaction. It is asked at three
places, each as cheaply as its path allows:

- ingest keeps the whole list in memory (`SuppressionList`), reloaded every few seconds, and
  hashes an event's ids only while the list is not empty: the common path costs one truth test;
- the stager (services/stager/suppression.py) and the actions worker ask `suppressed_among` in
  the transaction that would apply or deliver, so nothing erased comes back even from events
  that were already on the log, or are replayed from it.

`unsuppress` takes an id off; what was erased stays erased.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db.dialect import is_postgres
from shared.db.tables import suppressions
from shared.privacy.ids import id_hash, installation_salt

log = logging.getLogger(__name__)

# The fields of a Segment call that name a person (ingest drops a call if any is suppressed).
ID_FIELDS = ("userId", "anonymousId", "previousId")
# A PostgreSQL advisory lock: held exclusively by an erase, shared by every transaction that
# creates webhook deliveries, so no delivery of a person is created beside their erase.
ERASURE_LOCK = 0x706F6C6B75  # "polku"


async def hold_against_erasure(conn: AsyncConnection) -> None:
    """Wait for any erase in progress, and keep new ones out until this transaction ends."""
    if is_postgres(conn):
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock_shared(ERASURE_LOCK)))


async def lock_out_writers(conn: AsyncConnection) -> None:
    """The erase's side of `hold_against_erasure`."""
    if is_postgres(conn):
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ERASURE_LOCK)))


async def suppressed_among(conn: AsyncConnection, ids: Collection[str]) -> set[str]:
    """Which of `ids` are suppressed; asks the database once when the list is empty (the
    common case, and then nothing is hashed), twice otherwise."""
    if not ids:
        return set()
    anything = await conn.execute(sa.select(suppressions.c.id_hash).limit(1))
    if anything.first() is None:
        return set()
    salt = await installation_salt(conn)
    by_hash = {id_hash(salt, i): i for i in ids}
    found = await conn.execute(
        sa.select(suppressions.c.id_hash).where(suppressions.c.id_hash.in_(list(by_hash))))
    return {by_hash[h] for h in found.scalars()}


async def suppress(conn: AsyncConnection, hashes: Iterable[str], receipt_id: str,
                   now: datetime) -> None:
    rows = [{"id_hash": h, "suppressed_at": now, "receipt_id": receipt_id} for h in hashes]
    if not rows:
        return
    present = set((await conn.execute(
        sa.select(suppressions.c.id_hash)
        .where(suppressions.c.id_hash.in_([r["id_hash"] for r in rows]))
    )).scalars())
    new = [r for r in rows if r["id_hash"] not in present]
    if new:
        await conn.execute(sa.insert(suppressions), new)


async def unsuppress(engine: AsyncEngine, ids: Iterable[str]) -> dict[str, bool]:
    """Take ids off the list (their new events are accepted again); by hash, whether each was
    on it."""
    async with engine.begin() as conn:
        salt = await installation_salt(conn)
        removed: dict[str, bool] = {}
        for contact_id in ids:
            hashed = id_hash(salt, contact_id)
            result = await conn.execute(
                sa.delete(suppressions).where(suppressions.c.id_hash == hashed))
            removed[hashed] = bool(result.rowcount)
    return removed


class SuppressionList:
    """Ingest's copy of the list, reloaded every `refresh_s` (`run`).

    An id erased a moment ago may still be let through until the next reload: the stager drops
    those events (`suppressed_among`), so the copy only saves Kafka the traffic. Until the first
    load, and while the database cannot be read, the last copy is used.
    """

    def __init__(self, engine: AsyncEngine, refresh_s: float) -> None:
        self.engine = engine
        self.refresh_s = refresh_s
        self.hashes: frozenset[str] = frozenset()
        self._salt = b""
        self._version: tuple[int, Any] | None = None

    def covers(self, call: Mapping[str, Any]) -> bool:
        """Whether any id of a (validated) Segment call is suppressed. Call only while
        `hashes` is not empty."""
        salt, hashes = self._salt, self.hashes
        for name in ID_FIELDS:
            value = call.get(name)
            if value is not None and value != "" and id_hash(salt, str(value)) in hashes:
                return True
        return False

    async def refresh(self) -> None:
        async with self.engine.connect() as conn:
            # Count and newest row first: the list itself is read only when one has changed.
            version = tuple((await conn.execute(
                sa.select(sa.func.count(), sa.func.max(suppressions.c.suppressed_at))
            )).one())
            if version == self._version:
                return
            salt = await installation_salt(conn)
            hashes = frozenset((await conn.execute(sa.select(suppressions.c.id_hash))).scalars())
        self._salt, self.hashes = salt, hashes
        self._version = (int(version[0]), version[1])

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.refresh()
            except Exception as exc:  # keep the last copy; the stager still drops the events
                log.warning("cannot reload the suppression list (%s)", type(exc).__name__)
            try:
                await asyncio.wait_for(stopping.wait(), self.refresh_s)
            except TimeoutError:
                pass
