"""Applies the Alembic migrations programmatically (`polku db upgrade`, tests, `make up`), and
tells whether a database is at the newest revision (`polku db check`, `polku db wait`: what a
service's init container waits for in deploy/k8s)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from shared.db.engine import make_engine
from shared.settings import DatabaseSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision`. Blocking: call it off the event loop."""
    command.upgrade(alembic_config(url), revision)


@dataclass(frozen=True)
class SchemaStatus:
    """Which revisions a database is at, beside the newest this code knows (`head`)."""

    current: frozenset[str]
    head: frozenset[str]

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    def describe(self) -> str:
        current = ", ".join(sorted(self.current)) or "none (not migrated)"
        head = ", ".join(sorted(self.head))
        if self.at_head:
            return f"database schema at the newest revision ({head})"
        return f"database schema at {current}; the newest is {head}: run `polku db upgrade`"


class SchemaUnreachable(Exception):
    """The database did not answer; the message names only the error's type."""


def schema_status(url: str) -> SchemaStatus:
    """Where the database at `url` stands (blocking). Raises SchemaUnreachable."""
    head = frozenset(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    try:
        current = asyncio.run(_current_revisions(url))
    except Exception as exc:  # any driver or network failure: not reachable (yet)
        raise SchemaUnreachable(f"cannot read the schema revision ({type(exc).__name__})") \
            from exc
    return SchemaStatus(frozenset(current), head)


async def _current_revisions(url: str) -> tuple[str, ...]:
    engine = make_engine(DatabaseSettings(url_override=url), pool_size=1)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: tuple(MigrationContext.configure(sync).get_current_heads()))
    finally:
        await engine.dispose()
