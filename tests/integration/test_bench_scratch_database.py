"""The benchmarks' scratch database is dropped afterwards whatever holds it, and a drop that
cannot succeed is reported, never raised (real PostgreSQL). The slow case, an autovacuum worker
in the database, is tests/faults/test_scratch_database_autovacuum.py."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from bench.common import drop_database, scratch_database
from shared.settings import DatabaseSettings
from tests.processes import free_port


async def connect(settings: DatabaseSettings) -> asyncpg.Connection:
    return await asyncpg.connect(host=settings.host, port=settings.port, user=settings.user,
                                 password=settings.password, database=settings.db, timeout=10)


async def exists(name: str) -> bool:
    admin = await connect(DatabaseSettings())
    try:
        return await admin.fetchval("select 1 from pg_database where datname = $1", name) == 1
    finally:
        await admin.close()


async def test_a_scratch_database_is_dropped_though_the_session_that_made_it_was_cut() -> None:
    # A long benchmark outlives an idle session (a timeout, a server restart): the drop must
    # not depend on the session that created the database.
    async with scratch_database("polku_test_scratch") as scratch:
        other = await connect(DatabaseSettings())
        try:
            await other.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where query = $1 and pid <> pg_backend_pid()", f'create database "{scratch.db}"')
        finally:
            await other.close()
    assert not await exists(scratch.db)


async def test_a_scratch_database_is_dropped_while_a_pool_keeps_reconnecting_to_it() -> None:
    stop = asyncio.Event()
    connected = asyncio.Event()

    async def pool_that_reconnects(settings: DatabaseSettings) -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                conn = await connect(settings)
                connected.set()
                try:
                    await conn.execute("select pg_sleep(30)")
                finally:
                    await conn.close()
            await asyncio.sleep(0.01)

    async with scratch_database("polku_test_scratch") as scratch:
        holder = asyncio.create_task(pool_that_reconnects(scratch))
        await asyncio.wait_for(connected.wait(), 10)
    stop.set()
    await asyncio.wait_for(holder, 10)
    assert not await exists(scratch.db)


async def test_a_drop_that_cannot_succeed_says_why_instead_of_raising() -> None:
    unreachable = DatabaseSettings().model_copy(update={"port": free_port()})

    left = await drop_database(unreachable, "polku_test_scratch_nowhere", deadline_s=1.0)

    assert left is not None and "ConnectionRefusedError" in left, left
