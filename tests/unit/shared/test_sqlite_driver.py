"""Statements sent straight to the SQLite driver fail as they would through SQLAlchemy, so the
workers still tell an outage (retry) from a record the database refuses (dead letter)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc

from shared.db.engine import sqlite_driver, sqlite_engine
from shared.db.migrate import upgrade
from shared.failures import is_outage


async def test_a_missing_table_is_an_outage_and_a_refused_value_is_the_records_problem(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'polku.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = sqlite_engine(url)
    try:
        async with engine.begin() as conn:
            driver = await sqlite_driver(conn)
            with pytest.raises(sa_exc.OperationalError) as missing:
                await driver.fetchall("select * from not_migrated_yet")
            with pytest.raises(sa_exc.IntegrityError) as refused:
                await driver.executemany(
                    "insert into log_records (topic, partition, \"offset\") values (?, ?, ?)",
                    [("t", 0, 0), (None, 0, 1)])
    finally:
        await engine.dispose()
    assert is_outage(missing.value)
    assert not is_outage(refused.value)
    assert "parameters" not in str(refused.value)  # no record's data in its message
