"""The few statements whose SQL differs between PostgreSQL and SQLite (the embedded mode)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def is_postgres(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


def insert(conn: AsyncConnection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """INSERT with ON CONFLICT support in the connection's dialect (PostgreSQL or SQLite)."""
    if is_postgres(conn):
        return postgresql.insert(table)
    return sqlite.insert(table)
