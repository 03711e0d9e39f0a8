"""When a failed delivery is tried again: the persisted schedule, jitter and `Retry-After`.

The schedule only computes the next moment; the moment itself is stored on the delivery row in
PostgreSQL, so a restart or a crash of the worker loses no retry.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class RetrySchedule:
    """`delays[i]` is the wait before attempt i+1, so `delays[0]` is the first attempt's."""

    delays: tuple[float, ...]
    jitter: float = 0.1
    retry_after_max_s: float = 86_400.0
    random: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    @classmethod
    def of(cls, delays: Sequence[float], jitter: float = 0.1,
           retry_after_max_s: float = 86_400.0) -> RetrySchedule:
        return cls(tuple(float(d) for d in delays), jitter, retry_after_max_s)

    @property
    def max_attempts(self) -> int:
        return len(self.delays)

    def first_delay(self) -> float:
        return self._jittered(self.delays[0])

    def next_delay(self, attempts_made: int, retry_after_s: float | None = None) -> float | None:
        """Seconds until the next attempt after `attempts_made` failures, None when exhausted.

        A receiver's Retry-After (on 429/503) is honoured when it asks for longer than the
        schedule would wait, up to `retry_after_max_s`; it never adds attempts.
        """
        if attempts_made >= len(self.delays):
            return None
        delay = self._jittered(self.delays[attempts_made])
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.retry_after_max_s))
        return delay

    def _jittered(self, delay: float) -> float:
        if delay <= 0 or self.jitter <= 0:
            return max(0.0, delay)
        return delay * (1 + self.jitter * (2 * self.random() - 1))


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date); None if absent
    or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())
