"""Write-key lookups are cached briefly, shared while in flight, and survive a database outage.

The keys live in the test run's real PostgreSQL database; the lookups counted are the queries
the engine really sends. Only the cache's clock is the test's, so that TTLs pass instantly.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.read_api import read_api_of
from services.ingest.settings import IngestSettings
from services.ingest.sources import (
    LookupsExhausted,
    Source,
    SourceDirectory,
    SourcesUnavailable,
    create_source,
    hash_key,
    revoke_source,
)
from shared.db.engine import make_engine
from shared.settings import DatabaseSettings, KafkaSettings
from tests.ingest_app import Relay, basic, ingest_app

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


async def test_unknown_keys_are_cached_in_a_bounded_space_of_their_own(
    lookup_engine: AsyncEngine, lookups: Lookups, clock: Clock, source: tuple[Source, str]
) -> None:
    web, key = source
    directory = SourceDirectory(lookup_engine, ttl_s=TTL_S, lookup_timeout_s=2, clock=clock,
                                max_unknown_keys=3)
    assert await directory.find(key) == web
    for i in range(5):
        assert await directory.find(f"wk_random_{i}") is None
    assert lookups.count == 6
    assert await directory.find(key) == web  # not pushed out by the unknown keys
    assert await directory.find("wk_random_4") is None  # still cached
    assert lookups.count == 6
    assert await directory.find("wk_random_0") is None  # the oldest made room: asked again
    assert lookups.count == 7


async def test_lookups_of_keys_not_known_to_be_valid_are_budgeted_but_known_keys_are_not(
    lookup_engine: AsyncEngine, lookups: Lookups, clock: Clock, source: tuple[Source, str]
) -> None:
    web, key = source
    directory = SourceDirectory(lookup_engine, ttl_s=0.1, lookup_timeout_s=2, clock=clock,
                                lookups_per_s=1)
    assert await directory.find(key) == web  # the first sight of any key spends the budget
    clock.now += 0.2  # the valid key's entry expired; a fifth of a lookup earned back
    with pytest.raises(LookupsExhausted):
        await directory.find("wk_random")
    assert await directory.find(key) == web  # re-checking a known key is not budgeted
    assert lookups.count == 2
    clock.now += 1
    assert await directory.find("wk_random") is None  # a second later the budget is back
    assert lookups.count == 3


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


FLOOD = 10_000
LOOKUPS_PER_S = 50.0


async def test_a_flood_of_random_keys_neither_evicts_valid_keys_nor_refuses_their_senders(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, source: tuple[Source, str]
) -> None:
    """Through the real API: 10,000 requests with random keys while a valid sender posts."""
    _, key = source
    settings = IngestSettings(key_cache_ttl_s=1.0, key_lookups_per_s=LOOKUPS_PER_S)
    app = ingest_app(topic_names, database_settings, settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                          base_url="http://ingest") as client,
    ):
        queried = QueriedKeys(read_api_of(app).engine)
        valid_digest = hash_key(key)
        track = {"userId": "u-1", "event": "Order Completed"}
        assert (await client.post("/v1/track", json=track, headers=basic(key))).status_code == 200

        flood_statuses: Counter[int] = Counter()
        valid_statuses: Counter[int] = Counter()
        flooding = True

        async def flood(keys: list[str]) -> None:
            for random_key in keys:
                response = await client.post("/v1/track", json=track, headers=basic(random_key))
                flood_statuses[response.status_code] += 1

        async def valid_sender() -> None:
            while flooding:
                response = await client.post("/v1/track", json=track, headers=basic(key))
                valid_statuses[response.status_code] += 1
                await asyncio.sleep(0.05)

        random_keys = [f"wk_{uuid.uuid4().hex}" for _ in range(FLOOD)]
        sender = asyncio.create_task(valid_sender())
        started = time.monotonic()
        await asyncio.gather(*(flood(random_keys[i::200]) for i in range(200)))
        took = time.monotonic() - started
        await asyncio.sleep(1.5)  # past the valid key's TTL once more, flood over
        flooding = False
        await sender

    assert sum(flood_statuses.values()) == FLOOD
    # 401 once looked up, 429 beyond the lookup budget; a lookup that the loaded machine cannot
    # answer within key_lookup_timeout_s is a 503 for that unknown key (retryable), never for
    # the valid sender below.
    assert set(flood_statuses) <= {401, 429, 503}, flood_statuses
    assert flood_statuses[401] + flood_statuses[429] >= FLOOD * 0.99, flood_statuses
    assert set(valid_statuses) == {200}, valid_statuses
    # Bounded: the budget per second (and its one-second burst), not one query per key.
    flood_lookups = queried.total - queried.of(valid_digest)
    assert flood_lookups <= LOOKUPS_PER_S * (took + 1) + 1, (flood_lookups, took)
    # The valid key stayed cached: looked up about once per TTL, never pushed out.
    assert queried.of(valid_digest) <= (took + 1.5) / settings.key_cache_ttl_s + 2
    print(f"flood of {FLOOD} keys in {took:.1f} s: {dict(flood_statuses)}; "
          f"{flood_lookups} flood lookups, {queried.of(valid_digest)} of the valid key; "
          f"valid sender {dict(valid_statuses)}")


class QueriedKeys:
    """Which key digests an engine's write-key queries asked PostgreSQL about."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.digests: Counter[str] = Counter()
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, parameters: Any,
              *args: Any) -> None:
        if "FROM sources" in statement:
            values = parameters.values() if isinstance(parameters, dict) else parameters
            self.digests.update(v for v in values if isinstance(v, str) and len(v) == 64)

    @property
    def total(self) -> int:
        return sum(self.digests.values())

    def of(self, digest: str) -> int:
        return self.digests[digest]
