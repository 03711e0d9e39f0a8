"""The per-endpoint circuit breaker: opens on sustained failure, probes, closes on success."""

from __future__ import annotations

from services.actions.breaker import Breaker, BreakerState


class Time:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_it_opens_after_consecutive_failures_only() -> None:
    breaker = Breaker(failures=3, open_s=30, monotonic=Time())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # a success in between resets the count
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED and breaker.slots(8) == 8
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.slots(8) == 0 and not breaker.allow()


def test_after_the_cool_off_one_probe_goes_and_a_success_closes_it() -> None:
    clock = Time()
    breaker = Breaker(failures=1, open_s=30, monotonic=clock)
    breaker.record_failure()
    clock.now = 29.9
    assert breaker.slots(8) == 0
    clock.now = 30
    assert breaker.state is BreakerState.HALF_OPEN and breaker.slots(8) == 1
    assert breaker.allow()
    assert not breaker.allow() and breaker.slots(8) == 0  # one probe at a time
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.slots(8) == 8


def test_a_failed_probe_reopens_for_twice_as_long_up_to_the_maximum() -> None:
    clock = Time()
    breaker = Breaker(failures=1, open_s=30, max_open_s=100, monotonic=clock)
    breaker.record_failure()
    clock.now = 30
    for open_for in (60, 100, 100):
        assert breaker.allow()  # the probe
        breaker.record_failure()
        failed_at = clock.now
        clock.now = failed_at + open_for - 0.1
        assert breaker.state is BreakerState.OPEN
        clock.now = failed_at + open_for
        assert breaker.state is BreakerState.HALF_OPEN


def test_an_abandoned_probe_lets_another_one_go() -> None:
    clock = Time()
    breaker = Breaker(failures=1, open_s=1, monotonic=clock)
    breaker.record_failure()
    clock.now = 1
    assert breaker.allow()
    breaker.record_abandoned()
    assert breaker.allow()
