"""Creates the async SQLAlchemy engine from settings; one per process, disposed on shutdown."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.settings import DatabaseSettings


def make_engine(settings: DatabaseSettings, *, pool_size: int | None = None) -> AsyncEngine:
    url = settings.url
    if url.startswith("sqlite"):
        return create_async_engine(url)
    return create_async_engine(
        url,
        pool_size=pool_size or settings.pool_size,
        max_overflow=5,
        pool_pre_ping=True,
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
