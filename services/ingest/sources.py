"""Sources (the sites and apps that send events) and their write keys.

Only a SHA-256 of each key is stored, with a short prefix to recognise it by; the key itself is
shown once, when the source is created. Lookups are cached for a few seconds so authenticating a
request does not cost a PostgreSQL round trip; a revoked key therefore keeps working for at most
that TTL.

A flood of random keys must not hurt the senders with valid ones, so the two are kept apart:
valid keys live in a cache that unknown keys never evict (it holds at most one entry per
source), unknown keys in a bounded one of their own; and looking up a key not known to be valid
spends from a per-process budget (`POLKU_INGEST_KEY_LOOKUPS_PER_S`) that re-checking a known key
does not. Beyond the budget the answer is 429, not 401: a brand-new valid key must not be told
it is wrong (the SDKs drop what is refused with 401 and retry what is refused with 429).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest import metrics
from services.ingest.ratelimit import RateLimiter
from shared.db.tables import sources

log = logging.getLogger(__name__)

KEY_PREFIX = "wk_"
SHOWN_PREFIX_CHARS = 10  # "wk_" and 7 characters of the key: enough to tell keys apart
# Unknown keys are cached too (so a client with a wrong key cannot load the database), but that
# cache must not grow without bound when someone sends random keys: the oldest entries go first.
MAX_UNKNOWN_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class Source:
    id: str
    name: str
    rate_limit_per_s: float | None = None


@dataclass(frozen=True, slots=True)
class SourceListing:
    name: str
    key_prefix: str
    rate_limit_per_s: float | None
    created_at: datetime
    revoked_at: datetime | None


class SourceLookup(Protocol):
    async def find(self, write_key: str) -> Source | None:
        """The active source with this write key, None when it is unknown or revoked.

        Raises SourcesUnavailable when the answer cannot be known (database unreachable).
        """


class SourcesUnavailable(Exception):
    """The write keys could not be read and nothing is cached for this key."""


class LookupsExhausted(Exception):
    """Too many keys not known to be valid were looked up in the last second; try again."""


class DuplicateSource(Exception):
    pass


# Kept for the keys last seen: every request of a sender carries the same key.
@functools.lru_cache(maxsize=1024)
def hash_key(write_key: str) -> str:
    return hashlib.sha256(write_key.encode("utf-8", "surrogatepass")).hexdigest()


def new_write_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)


@dataclass(slots=True)
class _Cached:
    source: Source | None
    expires: float


class SourceDirectory:
    """Write key → source, read from PostgreSQL and cached for `ttl_s` seconds."""

    def __init__(
        self,
        engine: AsyncEngine,
        ttl_s: float,
        lookup_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        lookups_per_s: float = 50.0,
        max_unknown_keys: int = MAX_UNKNOWN_KEYS,
    ) -> None:
        self._engine = engine
        self._ttl_s = ttl_s
        self._timeout_s = lookup_timeout_s
        self._clock = clock
        # Valid keys only: bounded by the sources table, so never evicted.
        self._known: dict[str, _Cached] = {}
        # Unknown keys: digest -> expiry, oldest first.
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._max_unknown = max_unknown_keys
        self._lookups_per_s = lookups_per_s
        self._budget = RateLimiter(clock)
        # One query per key at a time: when an entry expires under load, every request for that
        # key waits for the same query instead of each taking a pooled connection.
        self._inflight: dict[str, asyncio.Future[Source | None]] = {}

    async def find(self, write_key: str) -> Source | None:
        """Raises LookupsExhausted when an unknown key would exceed the lookup budget."""
        digest = hash_key(write_key)
        now = self._clock()
        known = self._known.get(digest)
        if known is not None and known.expires > now:
            return known.source
        pending = self._inflight.get(digest)
        if pending is None:
            if known is None:
                if self._unknown.get(digest, 0.0) > now:
                    return None
                if self._budget.admit("unknown-keys", self._lookups_per_s, 1):
                    metrics.KEY_LOOKUPS.labels(outcome="refused").inc()
                    raise LookupsExhausted
            pending = asyncio.ensure_future(self._refresh(digest, known))
            self._inflight[digest] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(digest, None))
        # Shielded: one impatient client going away must not cancel the others' lookup.
        return await asyncio.shield(pending)

    async def _refresh(self, digest: str, stale: _Cached | None) -> Source | None:
        try:
            source = await asyncio.wait_for(self._query(digest), self._timeout_s)
        except Exception as exc:
            metrics.KEY_LOOKUPS.labels(outcome="failed").inc()
            if stale is None:
                raise SourcesUnavailable(str(exc) or type(exc).__name__) from exc
            # Keep serving what we knew rather than refuse every client while PostgreSQL is
            # away; try again after another TTL.
            log.warning("write-key lookup failed (%s); serving the cached answer",
                        type(exc).__name__)
            stale.expires = self._clock() + self._ttl_s
            return stale.source
        expires = self._clock() + self._ttl_s
        if source is not None:
            metrics.KEY_LOOKUPS.labels(outcome="found").inc()
            self._known[digest] = _Cached(source, expires)
            self._unknown.pop(digest, None)
        else:
            metrics.KEY_LOOKUPS.labels(outcome="unknown").inc()
            self._known.pop(digest, None)  # revoked or rotated away
            self._unknown[digest] = expires
            self._unknown.move_to_end(digest)
            while len(self._unknown) > self._max_unknown:
                self._unknown.popitem(last=False)
        return source

    async def _query(self, digest: str) -> Source | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(sources.c.id, sources.c.name, sources.c.rate_limit_per_s).where(
                        sources.c.key_hash == digest, sources.c.revoked_at.is_(None)
                    )
                )
            ).first()
        return Source(row.id, row.name, row.rate_limit_per_s) if row else None


async def create_source(
    engine: AsyncEngine, name: str, rate_limit_per_s: float | None = None
) -> tuple[Source, str]:
    """A new source and its write key; the key is not stored and cannot be shown again."""
    key = new_write_key()
    source = Source(str(uuid.uuid4()), name, rate_limit_per_s)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sources.insert().values(
                    id=source.id,
                    name=name,
                    key_hash=hash_key(key),
                    key_prefix=key[:SHOWN_PREFIX_CHARS],
                    rate_limit_per_s=rate_limit_per_s,
                )
            )
    except IntegrityError:
        raise DuplicateSource(f"a source named {name!r} already exists") from None
    return source, key


async def list_sources(engine: AsyncEngine) -> list[SourceListing]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(
                    sources.c.name,
                    sources.c.key_prefix,
                    sources.c.rate_limit_per_s,
                    sources.c.created_at,
                    sources.c.revoked_at,
                ).order_by(sources.c.name)
            )
        ).all()
    return [SourceListing(*row) for row in rows]


async def revoke_source(engine: AsyncEngine, name: str) -> bool:
    """Revoke the source's key; False when there is no active source of that name."""
    async with engine.begin() as conn:
        result = await conn.execute(
            sources.update()
            .where(sources.c.name == name, sources.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
    return bool(result.rowcount)


async def rotate_key(engine: AsyncEngine, name: str) -> str | None:
    """Give the source a new write key (reactivating it if revoked); None if no such source.

    The old key stops working within the lookup cache's TTL.
    """
    key = new_write_key()
    async with engine.begin() as conn:
        result = await conn.execute(
            sources.update()
            .where(sources.c.name == name)
            .values(key_hash=hash_key(key), key_prefix=key[:SHOWN_PREFIX_CHARS],
                    revoked_at=None)
        )
    return key if result.rowcount else None
