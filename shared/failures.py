"""The one definition of what a worker retries: an outage, or one record's problem.

A worker that reads a log can meet two kinds of failure while it applies a record:
- an **outage**: the database or the broker cannot be reached, is shutting down, is out of
  resources, or the deployment is wrong (a missing table, a refused login). Retrying the same
  work later is right; dropping anything would lose it.
- the **record's problem**: everything else. The engine raised on it, or the database refused its
  data (a NUL byte in a string, an id too long for an index, a value out of range). Retrying it
  fails the same way for ever and stalls the partition behind it, so the record is set aside on
  the dead-letter topic with the reason, and the records behind it are applied.

`is_outage` is the only place this is decided (the stager, the actions consumer, the actions
dispatcher's claim, write-behind and housekeeping, and the embedded mode all ask it); `isolate`
finds the one record a failed batch cannot get past. Where there is no record to set aside (the
dispatcher's claim, housekeeping), a failure that is not an outage is a bug: it is logged with
its traceback and the work tried again at the outage's pace, never faster.

This is aiokafka's `retriable` flag turned into one question: the errors to classify are the
drivers' (SQLAlchemy and its DBAPI, aiokafka, the OS), not Polku's own, so a hierarchy of Polku
exceptions would have nothing to carry the flag.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError
from sqlalchemy import exc as sa_exc

T = TypeVar("T")

# SQLSTATE classes that say the server or the deployment is at fault, not the statement's data:
# 08 connection, 28 authorisation, 3D no such database, 40 rolled back (deadlock, serialisation),
# 42 syntax or access (a missing table or privilege: a migration not applied), 53 insufficient
# resources, 55 object not in state (a lock not available), 57 operator intervention (shutdown,
# cancelled statement), 58 system error (I/O), XX internal error.
_OUTAGE_SQLSTATE_CLASSES = frozenset({"08", "28", "3D", "40", "42", "53", "55", "57", "58", "XX"})

# Kafka errors caused by the record itself rather than the broker.
_RECORD_KAFKA_ERRORS = (RecordTooLargeError, MessageSizeTooLargeError)


def is_outage(error: BaseException) -> bool:
    """True when `error` says a dependency is unavailable, so the same work must be retried."""
    if isinstance(error, KafkaError):
        return not isinstance(error, _RECORD_KAFKA_ERRORS)
    if isinstance(error, OSError | TimeoutError):  # ConnectionError is an OSError
        return True
    if isinstance(error, sa_exc.DBAPIError):
        return _database_outage(error)
    # Pool exhausted, a connection lost before any statement: SQLAlchemy's own, not the DBAPI's.
    return isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError)


def _database_outage(error: sa_exc.DBAPIError) -> bool:
    if error.connection_invalidated or isinstance(error, sa_exc.InterfaceError):
        return True
    original = error.orig
    if isinstance(original, OSError | TimeoutError):
        return True
    sqlstate = getattr(original, "sqlstate", None)  # asyncpg, through SQLAlchemy's adapter
    if isinstance(sqlstate, str) and sqlstate:
        return sqlstate[:2] in _OUTAGE_SQLSTATE_CLASSES
    # SQLite: "database is locked", "disk I/O error", "no such table" are OperationalErrors;
    # a value it refuses is a DataError or an IntegrityError.
    if isinstance(original, sqlite3.Error):
        return isinstance(original, sqlite3.OperationalError)
    return isinstance(error, sa_exc.OperationalError)


def failure_reason(error: BaseException) -> str:
    """A short, label-safe code for a record's problem (dead-letter header and metric label)."""
    if isinstance(error, sa_exc.DBAPIError):
        return "database_rejected"
    if isinstance(error, KafkaError):
        return "broker_rejected"
    return "processing_failed"


def failure_text(error: BaseException, limit: int = 300) -> str:
    """What went wrong, for the dead-letter header: the exception's class and first line.

    Database messages can quote the offending value, so this goes into the dead-letter record
    (which holds the payload anyway), never into logs; logs get `failure_reason` and the class.
    """
    original = getattr(error, "orig", None) or error
    # SQLAlchemy's asyncpg adapter raises its own generic class from the driver's specific one.
    if isinstance(original.__cause__, Exception):
        original = original.__cause__
    lines = str(original).strip().splitlines()
    text = type(original).__name__ + (f": {lines[0]}" if lines else "")
    # Headers are stored as JSON until published: no NUL or other control characters.
    return "".join(c if c.isprintable() else "?" for c in text)[:limit]


async def isolate(
    items: Sequence[T],
    apply: Callable[[Sequence[T]], Awaitable[None]],
    reject: Callable[[T, Exception], Awaitable[None]],
) -> None:
    """Apply `items` in order, setting aside each one that fails on its own.

    A batch that fails for a reason other than an outage is halved, and each half applied in
    turn, until the failing item stands alone; it is handed to `reject` (dead-lettered), and
    every item before and after it is applied. `apply` must be all-or-nothing (one database
    transaction) and skip what is already applied, so retrying a half is safe. One bad item
    among n costs about 2·log2(n) extra attempts. Outages propagate: the caller retries later.
    """
    try:
        await apply(items)
    except Exception as error:
        if is_outage(error):
            raise
        if len(items) == 1:
            await reject(items[0], error)
            return
        middle = len(items) // 2
        await isolate(items[:middle], apply, reject)
        await isolate(items[middle:], apply, reject)
