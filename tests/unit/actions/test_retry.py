"""The retry schedule: persisted moments, jitter within bounds, Retry-After honoured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from hypothesis import given
from hypothesis import strategies as st

from services.actions.retry import RetrySchedule, parse_retry_after
from services.actions.settings import DEFAULT_RETRY_SCHEDULE_S

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_the_default_schedule_is_immediately_then_5s_5min_30min_2h_5h_10h_10h() -> None:
    schedule = RetrySchedule.of(DEFAULT_RETRY_SCHEDULE_S, jitter=0)
    assert schedule.first_delay() == 0
    waits = [schedule.next_delay(n) for n in range(1, 9)]
    assert waits == [5, 300, 1800, 7200, 18000, 36000, 36000, None]
    assert schedule.max_attempts == 8


@given(st.floats(0, 1, exclude_max=True), st.integers(1, 7))
def test_jitter_stays_within_its_fraction(draw: float, attempts: int) -> None:
    schedule = RetrySchedule(DEFAULT_RETRY_SCHEDULE_S, jitter=0.1, random=lambda: draw)
    base = DEFAULT_RETRY_SCHEDULE_S[attempts]
    delay = schedule.next_delay(attempts)
    assert delay is not None and 0.9 * base <= delay <= 1.1 * base


def test_retry_after_is_honoured_when_longer_and_capped() -> None:
    schedule = RetrySchedule.of((0, 5, 300), jitter=0, retry_after_max_s=3600)
    assert schedule.next_delay(1, retry_after_s=120) == 120
    assert schedule.next_delay(1, retry_after_s=1) == 5  # never sooner than the schedule
    assert schedule.next_delay(1, retry_after_s=10**6) == 3600
    assert schedule.next_delay(3, retry_after_s=120) is None  # it adds no attempts


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("120", NOW) == 120
    assert parse_retry_after(format_datetime(NOW + timedelta(minutes=2), usegmt=True), NOW) == 120
    assert parse_retry_after(format_datetime(NOW - timedelta(minutes=2), usegmt=True), NOW) == 0
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None
