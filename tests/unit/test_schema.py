"""The migrations create exactly the tables shared/db/tables.py declares (columns, types,
indexes), as alembic's autogenerate compares them: on SQLite here, on PostgreSQL in
tests/integration/test_infrastructure.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.engine import sqlite_engine
from shared.db.migrate import upgrade
from shared.db.tables import metadata


async def differences(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)))


async def test_the_migrated_sqlite_schema_is_the_declared_one(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'schema.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = sqlite_engine(url)
    try:
        assert await differences(engine) == []
    finally:
        await engine.dispose()
