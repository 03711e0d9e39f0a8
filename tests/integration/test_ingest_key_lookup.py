"""Write-key lookups are cached briefly, shared while in flight, and survive a database outage.

The keys live in the test run's real PostgreSQL database; the lookups counted are the queries
the engine really sends. Only the cache's clock is the test's, so that TTLs pass instantly.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.sources import (
    Source,
    SourceDirectory,
    SourcesUnavailable,
    create_source,
    revoke_source,
)
from shared.db.engine import make_engine
from shared.settings import DatabaseSettings
from tests.ingest_app import Relay

TTL_S = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Lookups:
    """Counts the write-key queries an engine sends to PostgreSQL."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM sources" in statement:
            self.count += 1


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def source(engine: AsyncEngine) -> tuple[Source, str]:
    return await create_source(engine, f"web-{uuid.uuid4().hex[:6]}")


@pytest.fixture
async def lookup_engine(database_settings: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    """An engine of the directory's own, so that only its queries are counted."""
    engine = make_engine(database_settings, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
def lookups(lookup_engine: AsyncEngine) -> Lookups:
    return Lookups(lookup_engine)


@pytest.fixture
def directory(lookup_engine: AsyncEngine, clock: Clock) -> SourceDirectory:
    return SourceDirectory(lookup_engine, ttl_s=TTL_S, lookup_timeout_s=2, clock=clock)


async def test_a_known_key_is_looked_up_once_per_ttl(
    directory: SourceDirectory, lookups: Lookups, clock: Clock, source: tuple[Source, str]
) -> None:
    web, key = source
    assert await directory.find(key) == web
    assert await directory.find(key) == web
    assert lookups.count == 1
    clock.now += TTL_S + 0.1
    assert await directory.find(key) == web
    assert lookups.count == 2


async def test_a_revoked_key_stops_working_when_its_cache_entry_expires(
    directory: SourceDirectory, clock: Clock, engine: AsyncEngine, source: tuple[Source, str]
) -> None:
    web, key = source
    assert await directory.find(key) == web
    assert await revoke_source(engine, web.name)
    assert await directory.find(key) == web  # still cached
    clock.now += TTL_S + 0.1
    assert await directory.find(key) is None


async def test_unknown_keys_are_cached_too(directory: SourceDirectory, lookups: Lookups) -> None:
    assert await directory.find("wk_wrong") is None
    assert await directory.find("wk_wrong") is None
    assert lookups.count == 1


async def test_concurrent_requests_share_one_lookup(
    directory: SourceDirectory, lookups: Lookups, source: tuple[Source, str]
) -> None:
    web, key = source
    found = await asyncio.gather(*(directory.find(key) for _ in range(20)))
    assert found == [web] * 20
    assert lookups.count == 1


async def test_while_the_database_is_down_cached_keys_keep_working_and_others_fail(
    database_settings: DatabaseSettings, clock: Clock, source: tuple[Source, str]
) -> None:
    web, key = source
    relay = await Relay(database_settings.host, database_settings.port).start()
    through_relay = DatabaseSettings(**{**database_settings.model_dump(), "port": relay.port})
    engine = make_engine(through_relay, pool_size=1)
    try:
        directory = SourceDirectory(engine, ttl_s=TTL_S, lookup_timeout_s=2, clock=clock)
        assert await directory.find(key) == web
        await relay.cut()
        clock.now += TTL_S + 0.1
        assert await directory.find(key) == web  # stale, but better than refusing everyone
        with pytest.raises(SourcesUnavailable):
            await directory.find("wk_never_seen")
    finally:
        await engine.dispose()
        await relay.cut()
