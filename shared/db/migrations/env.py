"""Alembic environment: runs migrations over the async engine Polku's settings describe."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from shared.db.engine import make_engine
from shared.db.tables import metadata
from shared.settings import DatabaseSettings


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    url = context.config.get_main_option("sqlalchemy.url") or DatabaseSettings().url
    engine = make_engine(DatabaseSettings(url_override=url))
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


asyncio.run(_run_async())
