"""An autovacuum worker in a benchmark's scratch database does not stop it being dropped.

After `bench.stager --events 1000000` autovacuum is busy in the scratch database, and
`drop database ... with (force)` is refused outright: a role that is not a superuser may not
signal a process without a role, which is what an autovacuum worker is. Here autovacuum is
brought into a scratch database on purpose (a table whose thresholds make it due at once and
whose cost limit makes its vacuum crawl), then the scratch database is left as a benchmark
leaves it. Slow: the launcher visits a new database within about two of its one-minute rounds.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from bench.common import scratch_database
from shared.settings import DatabaseSettings

AUTOVACUUM_WITHIN_S = 300


async def connect(settings: DatabaseSettings) -> asyncpg.Connection:
    return await asyncpg.connect(host=settings.host, port=settings.port, user=settings.user,
                                 password=settings.password, database=settings.db, timeout=10)


async def autovacuum_arrives(admin: asyncpg.Connection, database: str) -> None:
    """Wait for a process in `database` that is not a client of ours: to a role that is not a
    superuser, an autovacuum worker shows in pg_stat_activity without a user."""
    started = time.monotonic()
    while time.monotonic() - started < AUTOVACUUM_WITHIN_S:
        if await admin.fetchval("select count(*) from pg_stat_activity "
                                "where datname = $1 and usesysid is null", database):
            return
        await asyncio.sleep(1)
    pytest.fail(f"no autovacuum worker came to {database} within {AUTOVACUUM_WITHIN_S} s")


async def test_a_scratch_database_is_dropped_while_autovacuum_works_in_it() -> None:
    admin = await connect(DatabaseSettings())
    try:
        async with scratch_database("polku_test_scratch_autovacuum") as scratch:
            conn = await connect(scratch)
            try:
                await conn.execute("""
                    create table crawl (id int, pad text) with (
                        autovacuum_vacuum_insert_threshold = 1,
                        autovacuum_vacuum_insert_scale_factor = 0,
                        autovacuum_analyze_threshold = 1,
                        autovacuum_analyze_scale_factor = 0,
                        autovacuum_vacuum_cost_delay = 100,
                        autovacuum_vacuum_cost_limit = 1);
                    insert into crawl select g, repeat('x', 100) from generate_series(1, 100000) g;
                """)
            finally:
                await conn.close()
            await autovacuum_arrives(admin, scratch.db)
            # The cause, as the benchmark met it.
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await admin.execute(f'drop database "{scratch.db}" with (force)')
        assert await admin.fetchval("select count(*) from pg_database where datname = $1",
                                    scratch.db) == 0
    finally:
        await admin.close()
