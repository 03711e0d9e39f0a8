"""Per-source rate limits (sources.rate_limit_per_s, in events per second), per process.

A token bucket that may go into debt: a request is admitted while the bucket holds at least one
token and then pays for all its events, so a batch larger than the bucket still gets through and the
source's average stays at its limit. With several ingest processes each enforces the limit on
its own share of the traffic.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, source_id: str, rate_per_s: float, events: int) -> int:
        """0 when admitted, else the whole seconds to wait before the bucket has tokens again."""
        if rate_per_s <= 0:
            return 1  # a limit of zero stops the source; look again in a second
        now = self._clock()
        burst = max(rate_per_s, 1.0)  # one second's worth
        bucket = self._buckets.get(source_id)
        if bucket is None:
            bucket = self._buckets[source_id] = _Bucket(burst, now)
        else:
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) * rate_per_s)
            bucket.updated = now
        if bucket.tokens < 1:
            return max(1, math.ceil((1 - bucket.tokens) / rate_per_s))
        bucket.tokens -= events
        return 0
