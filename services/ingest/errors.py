"""Why ingest refuses a request; `app.py` translates each into its HTTP answer in one place.

Every error names the field at fault (`body`, a header, or a field of the event) and the problem,
so a client can fix its call without reading our logs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Rejection:
    """One event of a batch that was not accepted, and why."""

    index: int
    field: str
    reason: str  # a short, fixed code; also the label of the rejected-events metric
    error: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason,
                "error": self.error}


class InvalidEvent(Exception):
    """One call (a single event or a batch item) is malformed; `field` None means all of it."""

    def __init__(self, field: str | None, problem: str, reason: str = "invalid_field") -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem
        self.reason = reason


class IngestError(Exception):
    """A refused request. `reason` is the machine-readable code and the metric label."""

    status = 400
    reason = "bad_request"

    def __init__(
        self,
        field: str,
        problem: str,
        *,
        events: int = 1,
        rejected: Sequence[Rejection] = (),
        reason: str | None = None,
    ) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
        # How many events the refused request carried (1 when it could not be parsed).
        self.events = events
        self.rejected = tuple(rejected)
        if reason is not None:
            self.reason = reason

    @property
    def headers(self) -> Mapping[str, str]:
        return {}


class BadRequest(IngestError):
    status = 400
    reason = "invalid_field"


class Unauthorized(IngestError):
    status = 401
    reason = "unauthorized"

    @property
    def headers(self) -> Mapping[str, str]:
        return {"WWW-Authenticate": 'Basic realm="polku", charset="UTF-8"'}


class PayloadTooLarge(IngestError):
    status = 413
    reason = "too_large"


class UnsupportedEncoding(IngestError):
    status = 415
    reason = "unsupported_encoding"


class _RetryLater(IngestError):
    """A refusal the client should retry after `retry_after_s` seconds."""

    def __init__(self, field: str, problem: str, *, retry_after_s: int, events: int = 1) -> None:
        super().__init__(field, problem, events=events)
        self.retry_after_s = max(1, retry_after_s)

    @property
    def headers(self) -> Mapping[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class RateLimited(_RetryLater):
    status = 429
    reason = "rate_limited"


class Unavailable(_RetryLater):
    """Kafka did not acknowledge in time, or the write keys could not be looked up."""

    status = 503
    reason = "unavailable"
