"""What becomes of a delivery after one attempt: delivered, attempted again later, or
dead-lettered.

A pure decision, with no clock, database, metric or log of its own: the dispatcher counts and
logs it and hands it to the write-behind (results.py), which stores it. Only a 2xx delivers;
a 410 Gone and a refusal (the egress policy, an unusable URL) dead-letter at once, whatever the
schedule; any other failure is attempted again after the retry schedule's next delay (at least
what a receiver's Retry-After asks for) until the schedule runs out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.actions.attempt import Outcome, Result
from services.actions.retry import RetrySchedule
from services.actions.store import DELIVERED, FAILED, PENDING, Delivery


class Verdict(enum.Enum):
    """Why the delivery is in its next state; the value is the attempts metric's label."""

    DELIVERED = "delivered"
    RETRY = "retry"
    EXHAUSTED = "dead_letter"  # failed, and the retry schedule has no attempt left
    GONE = "gone"  # 410: dead-lettered, and the endpoint is disabled
    REFUSED = "refused"  # never attempted again


_STATUS = {
    Verdict.DELIVERED: DELIVERED,
    Verdict.RETRY: PENDING,
    Verdict.EXHAUSTED: FAILED,
    Verdict.GONE: FAILED,
    Verdict.REFUSED: FAILED,
}


@dataclass(frozen=True)
class NextState:
    verdict: Verdict
    attempts_made: int  # this attempt included
    error: str | None  # stored as the delivery's last error
    next_attempt_at: datetime | None = None  # set on a retry only
    delay_s: float | None = None  # (retry) the wait until next_attempt_at, unrounded

    @property
    def status(self) -> str:
        """The delivery's new status: pending (a retry), delivered or failed (a dead letter)."""
        return _STATUS[self.verdict]


def next_state(delivery: Delivery, outcome: Outcome, schedule: RetrySchedule,
               now: datetime) -> NextState:
    """The delivery's next state after an attempt made at `now` came out as `outcome`."""
    attempts_made = delivery.attempts + 1
    if outcome.result is Result.DELIVERED:
        return NextState(Verdict.DELIVERED, attempts_made, None)
    if outcome.result is Result.GONE:
        return NextState(Verdict.GONE, attempts_made, outcome.error)
    if outcome.result is Result.REFUSED:
        return NextState(Verdict.REFUSED, attempts_made, outcome.error)
    delay = schedule.next_delay(attempts_made, outcome.retry_after_s)
    if delay is None:
        return NextState(Verdict.EXHAUSTED, attempts_made,
                         f"gave up after {attempts_made} attempts; last: {outcome.error}")
    return NextState(Verdict.RETRY, attempts_made, outcome.error,
                     now + timedelta(seconds=delay), delay)
