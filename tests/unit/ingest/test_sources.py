"""Write-key lookups are cached briefly, shared while in flight, and survive a database blip."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.ingest.sources import (
    Source,
    SourceDirectory,
    SourcesUnavailable,
    hash_key,
    new_write_key,
)

WEB = Source("source-1", "web")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingDirectory(SourceDirectory):
    """The real cache in front of a dict instead of PostgreSQL."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(engine=None, ttl_s=5, lookup_timeout_s=1, clock=clock)  # type: ignore[arg-type]
        self.rows: dict[str, Source] = {hash_key("wk_web"): WEB}
        self.queries = 0
        self.down = False
        self.delay = 0.0

    async def _query(self, digest: str) -> Source | None:
        self.queries += 1
        await asyncio.sleep(self.delay)
        if self.down:
            raise OSError("connection refused")
        return self.rows.get(digest)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def directory(clock: Clock) -> CountingDirectory:
    return CountingDirectory(clock)


async def test_a_known_key_is_looked_up_once_per_ttl(directory: CountingDirectory,
                                                    clock: Clock) -> None:
    assert await directory.find("wk_web") == WEB
    assert await directory.find("wk_web") == WEB
    assert directory.queries == 1
    clock.now += 5.1
    assert await directory.find("wk_web") == WEB
    assert directory.queries == 2


async def test_a_revoked_key_stops_working_when_its_cache_entry_expires(
    directory: CountingDirectory, clock: Clock
) -> None:
    assert await directory.find("wk_web") == WEB
    directory.rows.clear()  # revoked in the database
    assert await directory.find("wk_web") == WEB  # still cached
    clock.now += 5.1
    assert await directory.find("wk_web") is None


async def test_unknown_keys_are_cached_too(directory: CountingDirectory) -> None:
    assert await directory.find("wk_wrong") is None
    assert await directory.find("wk_wrong") is None
    assert directory.queries == 1


async def test_concurrent_requests_share_one_lookup(directory: CountingDirectory) -> None:
    directory.delay = 0.05
    found = await asyncio.gather(*(directory.find("wk_web") for _ in range(20)))
    assert found == [WEB] * 20
    assert directory.queries == 1


async def test_while_the_database_is_down_cached_keys_keep_working_and_others_fail(
    directory: CountingDirectory, clock: Clock
) -> None:
    assert await directory.find("wk_web") == WEB
    directory.down = True
    clock.now += 5.1
    assert await directory.find("wk_web") == WEB  # stale, but better than refusing everyone
    with pytest.raises(SourcesUnavailable):
        await directory.find("wk_never_seen")


def test_keys_are_long_random_and_only_their_hash_is_kept() -> None:
    keys = {new_write_key() for _ in range(100)}
    assert len(keys) == 100
    key: Any = keys.pop()
    assert key.startswith("wk_") and len(key) >= 32
    assert len(hash_key(key)) == 64 and key not in hash_key(key)
