"""How the stager's batch writes reach the database: one protocol, a backend per database.

`base.StagerStorage` names the five bulk operations a partition batch needs (claim messageIds,
load states, upsert states, insert transitions, insert outbox rows); `postgres` implements them
with `unnest` statements, `portable` with SQLAlchemy Core for SQLite (`polku dev`, the unit
tests). `storage_for` chooses between them from the engine's dialect, in this one place; the
store (services/stager/store.py) keeps the transaction, the offsets and what the batch means.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from services.stager.storage.base import StagerStorage
from services.stager.storage.portable import PortableStorage
from services.stager.storage.postgres import PostgresStorage

_BY_DIALECT: dict[str, StagerStorage] = {"postgresql": PostgresStorage()}
_PORTABLE = PortableStorage()


def storage_for(engine: AsyncEngine) -> StagerStorage:
    """The backend for `engine`'s database: PostgreSQL's own, else the portable one."""
    return _BY_DIALECT.get(engine.dialect.name, _PORTABLE)


__all__ = ["PortableStorage", "PostgresStorage", "StagerStorage", "storage_for"]
