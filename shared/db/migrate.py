"""Applies the Alembic migrations programmatically (`polku db upgrade`, tests, `make up`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision`. Blocking: call it off the event loop."""
    command.upgrade(alembic_config(url), revision)
