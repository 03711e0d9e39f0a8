"""What a worker retries (an outage) and what it dead-letters (the record's problem)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, RecordTooLargeError
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import exc as sa_exc

from shared.failures import failure_reason, failure_text, is_outage, isolate


class PostgresError(Exception):
    """Stands for asyncpg's error as SQLAlchemy's adapter carries it: a message and a sqlstate."""

    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def postgres(sqlstate: str, kind: type[sa_exc.DBAPIError] = sa_exc.DBAPIError,
             message: str = "refused") -> sa_exc.DBAPIError:
    return kind("insert ...", {}, PostgresError(message, sqlstate))


@pytest.mark.parametrize(("error", "outage"), [
    (KafkaConnectionError(), True),
    (KafkaTimeoutError(), True),
    (RecordTooLargeError(), False),
    (ConnectionRefusedError(), True),
    (TimeoutError(), True),
    (sa_exc.TimeoutError("pool exhausted"), True),
    (postgres("08006"), True),  # connection failure
    (postgres("57P01"), True),  # admin shutdown
    (postgres("40P01"), True),  # deadlock
    (postgres("40001"), True),  # serialisation failure
    (postgres("53300"), True),  # too many connections
    (postgres("42P01"), True),  # undefined table: a migration not applied
    (postgres("28P01"), True),  # password refused
    (postgres("22021"), False),  # NUL byte / invalid encoding in a value
    (postgres("22008"), False),  # datetime out of range
    (postgres("54000"), False),  # index row too large (an over-long id)
    (postgres("23505", sa_exc.IntegrityError), False),
    (sa_exc.OperationalError("x", {}, sqlite3.OperationalError("database is locked")), True),
    (sa_exc.IntegrityError("x", {}, sqlite3.IntegrityError("NOT NULL failed")), False),
    (sa_exc.DBAPIError("x", {}, PostgresError("gone", "22000"), connection_invalidated=True),
     True),
    (OverflowError("date value out of range"), False),
    (ValueError("engine bug"), False),
    (KeyError("stage"), False),
])
def test_outages_are_retried_and_everything_else_is_the_records_problem(
    error: BaseException, outage: bool
) -> None:
    assert is_outage(error) is outage


def test_a_record_problem_has_a_label_safe_reason_and_a_printable_text() -> None:
    refused = postgres("22021", message='invalid byte sequence for encoding "UTF8": 0x00\nmore')
    assert failure_reason(refused) == "database_rejected"
    assert failure_text(refused) == 'PostgresError: invalid byte sequence for encoding "UTF8": 0x00'
    assert failure_reason(OverflowError()) == "processing_failed"
    assert failure_text(ValueError("a\x00b")) == "ValueError: a?b"
    assert len(failure_text(ValueError("x" * 1000))) == 300


def run_isolated(items: Sequence[int], bad: set[int]) -> tuple[list[int], list[int], int]:
    """Apply `items` all-or-nothing per call, failing any call that holds a bad item."""
    applied: list[int] = []
    rejected: list[int] = []
    calls = 0

    async def apply(part: Sequence[int]) -> None:
        nonlocal calls
        calls += 1
        if bad & set(part):
            raise ValueError("cannot apply")
        applied.extend(part)

    async def reject(item: int, error: Exception) -> None:
        assert isinstance(error, ValueError)
        rejected.append(item)

    asyncio.run(isolate(items, apply, reject))
    return applied, rejected, calls


@given(st.integers(1, 300).flatmap(
    lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1), max_size=5))))
def test_isolate_applies_every_good_item_once_in_order_and_rejects_only_the_bad(
    case: tuple[int, set[int]],
) -> None:
    n, bad = case
    applied, rejected, _ = run_isolated(range(n), bad)
    assert applied == [i for i in range(n) if i not in bad]
    assert rejected == sorted(bad)


def test_one_bad_item_in_two_thousand_costs_a_few_dozen_attempts() -> None:
    _, rejected, calls = run_isolated(range(2000), {1234})
    assert rejected == [1234]
    assert calls <= 2 * 11 + 1


def test_an_outage_while_isolating_propagates_for_the_caller_to_retry() -> None:
    async def apply(part: Sequence[int]) -> None:
        raise KafkaConnectionError()

    async def reject(item: int, error: Exception) -> None:
        raise AssertionError("nothing is dead-lettered during an outage")

    with pytest.raises(KafkaConnectionError):
        asyncio.run(isolate([1, 2, 3], apply, reject))
