"""The embedded log's appends (a SQLite file): grouped into one commit, each returned only once its
records are committed, offsets in call order, and nothing written for an append given up."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.engine import sqlite_engine
from shared.db.migrate import upgrade
from shared.embedded_log import EmbeddedLog
from shared.streams import OutRecord

TOPIC = "touchpoints"


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[tuple[AsyncEngine, Path]]:
    path = tmp_path / "polku.db"
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(upgrade, url)
    engine = sqlite_engine(url)
    yield engine, path
    await engine.dispose()


def commits(engine: AsyncEngine) -> list[None]:
    counted: list[None] = []
    event.listen(engine.sync_engine, "commit", lambda _conn: counted.append(None))
    return counted


def on_disk(path: Path) -> list[tuple[int, bytes]]:
    """What another connection to the file sees: only committed records."""
    with sqlite3.connect(path) as other:
        return other.execute('select "offset", value from log_records order by "offset"'
                             ).fetchall()


async def test_appends_waiting_for_the_connection_share_one_commit_and_keep_their_order(
    database: tuple[AsyncEngine, Path],
) -> None:
    engine, path = database
    log = EmbeddedLog(engine)
    counted = commits(engine)
    seen_at_return: dict[bytes, list[tuple[int, bytes]]] = {}

    async def append(value: bytes) -> None:
        await log.write([OutRecord(TOPIC, b"k", value), OutRecord(TOPIC, b"k", value + b"'")])
        seen_at_return[value] = on_disk(path)

    async with engine.connect():  # the connection is busy: the five appends queue up
        appends = [asyncio.create_task(append(b"%d" % i)) for i in range(5)]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in appends)
    await asyncio.gather(*appends)

    assert len(counted) == 1
    expected = [(i, value) for i, value in enumerate(
        v for n in range(5) for v in (b"%d" % n, b"%d'" % n))]
    assert on_disk(path) == expected
    # Each returned only once its records were committed to the file.
    assert all(seen == expected for seen in seen_at_return.values())
    assert [r.value for r in await log.read(TOPIC, 0, 8, 10)] == [b"4", b"4'"]


async def test_an_append_given_up_before_its_transaction_began_is_not_written(
    database: tuple[AsyncEngine, Path],
) -> None:
    engine, path = database
    log = EmbeddedLog(engine)
    async with engine.connect():
        first = asyncio.create_task(log.write([OutRecord(TOPIC, b"k", b"first")]))
        await asyncio.sleep(0.05)  # taken: its transaction waits for the connection
        given_up = asyncio.create_task(log.write([OutRecord(TOPIC, b"k", b"given up")]))
        last = asyncio.create_task(log.write([OutRecord(TOPIC, b"k", b"last")]))
        await asyncio.sleep(0.05)
        given_up.cancel()
    await asyncio.gather(first, last)
    assert given_up.cancelled()
    assert on_disk(path) == [(0, b"first"), (1, b"last")]


async def test_a_failed_transaction_fails_every_append_in_it_and_leaves_no_gap(
    database: tuple[AsyncEngine, Path],
) -> None:
    engine, path = database
    log = EmbeddedLog(engine)
    await log.write([OutRecord(TOPIC, b"k", b"before")])
    async with engine.connect():
        good = asyncio.create_task(log.write([OutRecord(TOPIC, b"k", b"good")]))
        # A record without a topic: the database refuses the transaction holding it.
        bad = asyncio.create_task(log.write([OutRecord(None, b"k", b"bad")]))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
    results = await asyncio.gather(good, bad, return_exceptions=True)
    # Raised as SQLAlchemy raises it, so shared.failures classifies it as before.
    assert all(isinstance(r, sa_exc.IntegrityError) for r in results)
    await log.write([OutRecord(TOPIC, b"k", b"after")])
    assert on_disk(path) == [(0, b"before"), (1, b"after")]
