"""Per-endpoint circuit breaker, so a dead or drowning endpoint stops costing attempts and slots.

Closed: deliveries flow up to the endpoint's concurrency limit. After `failures` attempts in a
row fail it opens: nothing is sent to it and its deliveries wait in PostgreSQL without spending
attempts. After `open_s` it lets one probe through (half-open); a success closes it, a failure
opens it again for twice as long (up to `max_open_s`). The state is per worker process.

Each opening and closing is logged, one line naming the endpoint by its id (never its URL, which
may carry a token): an operator sees why an endpoint's deliveries stopped moving.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class BreakerState(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class Breaker:
    def __init__(self, failures: int = 5, open_s: float = 30.0, max_open_s: float = 600.0,
                 monotonic: Callable[[], float] = time.monotonic, *, endpoint: str = "") -> None:
        self.endpoint = endpoint  # the endpoint id, for the log
        self.threshold = failures
        self.base_open_s = open_s
        self.max_open_s = max_open_s
        self.monotonic = monotonic
        self.consecutive_failures = 0
        self._state = BreakerState.CLOSED
        self._open_s = open_s
        self._reopens_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self.monotonic() >= self._reopens_at:
            self._state = BreakerState.HALF_OPEN
            self._probing = False
            log.info("circuit breaker of endpoint %s half-open: one probe attempt may go",
                     self.endpoint)
        return self._state

    def slots(self, limit: int) -> int:
        """How many attempts may start now, given `limit` free concurrency slots."""
        state = self.state
        if state is BreakerState.CLOSED:
            return limit
        if state is BreakerState.HALF_OPEN and not self._probing:
            return min(1, limit)
        return 0

    def allow(self) -> bool:
        """Take permission for one attempt (the probe, when half-open)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def record_success(self) -> None:
        if self._state is not BreakerState.CLOSED:
            log.info("circuit breaker of endpoint %s closed: an attempt was delivered",
                     self.endpoint)
        self.consecutive_failures = 0
        self._state = BreakerState.CLOSED
        self._open_s = self.base_open_s
        self._probing = False

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        state = self.state
        if state is BreakerState.HALF_OPEN:
            self._open_s = min(self._open_s * 2, self.max_open_s)
            self._trip()
            log.warning("circuit breaker of endpoint %s opened again: the probe failed; "
                        "next probe in %g s", self.endpoint, self._open_s)
        elif state is BreakerState.CLOSED and self.consecutive_failures >= self.threshold:
            self._trip()
            log.warning("circuit breaker of endpoint %s opened after %d failed attempts in a "
                        "row; its deliveries wait, next probe in %g s", self.endpoint,
                        self.consecutive_failures, self._open_s)

    def record_abandoned(self) -> None:
        """An allowed attempt never ran (shutdown): let another probe go."""
        self._probing = False

    def _trip(self) -> None:
        self._state = BreakerState.OPEN
        self._reopens_at = self.monotonic() + self._open_s
        self._probing = False
