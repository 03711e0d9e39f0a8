"""A source's rate limit holds on average, lets any batch through, and says when to retry."""

from __future__ import annotations

from services.ingest.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_one_seconds_worth_passes_then_the_source_waits() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    assert limiter.admit("s", 100, 60) == 0
    assert limiter.admit("s", 100, 40) == 0
    assert limiter.admit("s", 100, 1) == 1  # empty: retry in a second
    clock.now += 0.5
    assert limiter.admit("s", 100, 10) == 0  # 50 tokens back


def test_a_batch_larger_than_the_bucket_passes_and_is_paid_for_afterwards() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    assert limiter.admit("s", 10, 2500) == 0
    assert limiter.admit("s", 10, 1) == 250  # ~2490 tokens of debt at 10/s
    clock.now += 250
    assert limiter.admit("s", 10, 1) == 0


def test_sources_have_separate_buckets_and_zero_stops_a_source() -> None:
    limiter = RateLimiter(Clock())
    assert limiter.admit("a", 1, 5) == 0
    assert limiter.admit("a", 1, 1) > 0
    assert limiter.admit("b", 1, 1) == 0
    assert limiter.admit("c", 0, 1) == 1
