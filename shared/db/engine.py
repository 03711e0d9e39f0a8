"""Creates the async SQLAlchemy engine from settings; one per process, disposed on shutdown."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, cast

import aiosqlite
from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from shared.settings import DatabaseSettings


def make_engine(
    settings: DatabaseSettings, *, pool_size: int | None = None, pre_ping: bool = True
) -> AsyncEngine:
    """`pre_ping` tests each connection as it leaves the pool, so nothing fails on a connection
    the server closed (a restart). It costs a round trip per checkout: a caller that retries
    every failed transaction anyway (the stager) can turn it off. SQLAlchemy still discards the
    whole pool when it meets a closed connection, so that caller fails once, not once per
    pooled connection."""
    url = settings.url
    if url.startswith("sqlite"):
        return sqlite_engine(url)
    return create_async_engine(
        url,
        pool_size=pool_size or settings.pool_size,
        max_overflow=5,
        pool_pre_ping=pre_ping,
        pool_timeout=5,
        # A statement must not hang a request or a batch forever when the server goes away.
        connect_args={"timeout": 5, "command_timeout": 30},
    )


async def database_reachable(engine: AsyncEngine) -> bool:
    """True when a pooled connection can run a trivial query."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("select 1"))
        return True
    except Exception:  # any driver or pool failure means "not ready"
        return False


# The SQLite connection's page cache (PRAGMA cache_size), in KiB.
CACHE_KIB = 64 * 1024


def sqlite_engine(url: str) -> AsyncEngine:
    """The embedded mode's database: one SQLite file, written through ONE connection.

    The whole embedded Polku is one process, so a single pooled connection serialises every
    transaction in the event loop's own queue: no two writers ever meet SQLite's file lock (no
    SQLITE_BUSY, no busy-wait sleeps), and a transaction that reads before it writes sees
    exactly what it will update. WAL keeps readers of the file (`sqlite3`, an export) out of the
    writer's way, and `synchronous=FULL` makes each commit reach the disk before it returns:
    that is what lets a 2xx mean "durable" in this mode too.
    """
    engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=120)

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # secure_delete: a deleted row is overwritten with zeros, not left in the file's free
        # space, where an erased person (docs/privacy.md) could be read back from the bytes.
        # cache_size: 64 MiB of pages instead of 2 MiB. A stager batch rewrites a few thousand
        # contact states scattered over the file; with the default cache their pages were read
        # again for each index and written out before the commit.
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON",
                       "busy_timeout=10000", "secure_delete=ON", f"cache_size=-{CACHE_KIB}"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    return engine


class SqliteDriver:
    """Statements sent straight to the aiosqlite driver under a connection of `sqlite_engine`,
    in that connection's transaction (sqlite3 begins one before the first write; the
    SQLAlchemy connection commits or rolls it back). For the embedded mode's hot paths.

    Each statement is one hop to the driver's thread, with the rows of an `executemany` bound
    by sqlite3 in C; through SQLAlchemy a statement takes four hops (cursor, execute, fetch,
    close) and every parameter of every row is processed in Python first. Errors are raised as
    SQLAlchemy raises them (its OperationalError, IntegrityError, ... with the sqlite3 error as
    `orig`), so shared.failures and every caller tell an outage from a refused record exactly
    as they do for statements sent through SQLAlchemy. Parameters stay out of their messages.
    """

    def __init__(self, driver: aiosqlite.Connection) -> None:
        self._driver = driver

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            await self._driver.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise _as_sqlalchemy(sql, exc) from exc

    async def fetchall(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            rows = await self._driver.execute_fetchall(sql, parameters)
        except sqlite3.Error as exc:
            raise _as_sqlalchemy(sql, exc) from exc
        return cast(list[tuple[Any, ...]], rows)  # sqlite3's rows are tuples (no row_factory)


def _as_sqlalchemy(sql: str, error: sqlite3.Error) -> BaseException:
    # The statement without its parameters: they may hold personal data.
    return sa_exc.DBAPIError.instance(sql, None, error, sqlite3.Error)


async def sqlite_driver(conn: AsyncConnection) -> SqliteDriver:
    """The driver under `conn`, a connection of `sqlite_engine` (see SqliteDriver)."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert isinstance(driver, aiosqlite.Connection), "not a connection of sqlite_engine"
    return SqliteDriver(driver)
