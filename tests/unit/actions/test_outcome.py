"""What becomes of a delivery after an attempt: a 2xx delivers, a 410 or a refusal
dead-letters at once, any other failure is attempted again per the schedule until it runs out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.actions.attempt import Outcome, Result
from services.actions.outcome import NextState, Verdict, next_state
from services.actions.retry import RetrySchedule
from services.actions.store import DELIVERED, FAILED, PENDING, Delivery

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
# Immediately, then 5 s, 5 min: three attempts in all.
SCHEDULE = RetrySchedule.of((0, 5, 300), jitter=0, retry_after_max_s=3600)


def delivery(attempts: int = 0) -> Delivery:
    return Delivery(
        id="msg_1", transition_id="t-1", endpoint_id="ep_1", url="https://example.test/hook",
        journey_id="onboarding", contact="contact-1", payload="{}", secret_env="SECRET",
        secret_file=None, headers={}, status=PENDING, attempts=attempts, next_attempt_at=NOW,
        claim_token="claim-1", last_status=None, last_error=None, last_attempt_at=None,
        created_at=NOW, delivered_at=None, failed_at=None,
    )


def failed(status: int | None = 500, error: str = "HTTP 500", *,
           retry_after_s: float | None = None) -> Outcome:
    return Outcome(Result.FAILED, http_status=status, error=error, retry_after_s=retry_after_s,
                   kind="http_status")


def test_a_2xx_delivers_and_clears_the_error() -> None:
    state = next_state(delivery(attempts=1), Outcome(Result.DELIVERED, http_status=204),
                       SCHEDULE, NOW)
    assert state == NextState(Verdict.DELIVERED, attempts_made=2, error=None)
    assert state.status == DELIVERED


def test_a_failure_is_attempted_again_after_the_schedules_next_delay() -> None:
    state = next_state(delivery(attempts=1), failed(), SCHEDULE, NOW)
    assert state.verdict is Verdict.RETRY and state.status == PENDING
    assert state.attempts_made == 2
    assert state.next_attempt_at == NOW + timedelta(seconds=300)
    assert state.delay_s == 300
    assert state.error == "HTTP 500"


def test_a_retry_after_longer_than_the_schedule_is_honoured() -> None:
    state = next_state(delivery(), failed(503, retry_after_s=120), SCHEDULE, NOW)
    assert state.next_attempt_at == NOW + timedelta(seconds=120)


def test_the_last_failure_the_schedule_allows_dead_letters_with_a_summary() -> None:
    state = next_state(delivery(attempts=2), failed(error="timed out"), SCHEDULE, NOW)
    assert state.verdict is Verdict.EXHAUSTED and state.status == FAILED
    assert state.verdict.value == "dead_letter"
    assert state.error == "gave up after 3 attempts; last: timed out"
    assert state.next_attempt_at is None


@pytest.mark.parametrize(("result", "verdict"), [
    (Result.GONE, Verdict.GONE),
    (Result.REFUSED, Verdict.REFUSED),
])
def test_gone_and_refused_dead_letter_on_the_first_attempt(result: Result,
                                                            verdict: Verdict) -> None:
    state = next_state(delivery(), Outcome(result, http_status=410, error="why"), SCHEDULE, NOW)
    assert state == NextState(verdict, attempts_made=1, error="why")
    assert state.status == FAILED


@given(st.integers(0, 10), st.sampled_from(list(Result)),
       st.none() | st.floats(0, 10**6, allow_nan=False))
def test_every_attempt_ends_in_exactly_one_consistent_state(
    attempts: int, result: Result, retry_after_s: float | None,
) -> None:
    outcome = Outcome(result, error="e", retry_after_s=retry_after_s)
    state = next_state(delivery(attempts), outcome, SCHEDULE, NOW)
    assert state.attempts_made == attempts + 1
    # Only a retry has a next attempt, never in the past, and never beyond what the schedule
    # and the Retry-After cap allow; the schedule never grants more attempts than it has.
    assert (state.next_attempt_at is not None) == (state.status == PENDING)
    if state.next_attempt_at is not None:
        assert NOW <= state.next_attempt_at <= NOW + timedelta(seconds=3600)
        assert state.attempts_made < SCHEDULE.max_attempts
    assert (state.status == DELIVERED) == (result is Result.DELIVERED)
    assert state.verdict.value in {"delivered", "retry", "dead_letter", "gone", "refused"}
