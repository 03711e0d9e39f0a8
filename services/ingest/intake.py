"""What ingest does with an authenticated request's calls: rate-limit, validate, publish, count.

Independent of HTTP: routes.py reads the request, this module decides, errors.py says why not.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from services.ingest import metrics
from services.ingest.auth import authenticate
from services.ingest.errors import (
    BadRequest,
    InvalidEvent,
    RateLimited,
    Rejection,
    Unavailable,
)
from services.ingest.publish import NotAcknowledged, Publisher
from services.ingest.ratelimit import RateLimiter
from services.ingest.settings import IngestSettings
from services.ingest.sources import Source, SourceLookup
from services.ingest.touchpoint import TYPES, Arrival, Instant, Record, to_record
from shared.privacy import SuppressionList

log = logging.getLogger(__name__)

ACCEPTED = metrics.accepted_by_type(TYPES)


@dataclass
class Intake:
    """The service's state: settings, where keys are looked up, where events go."""

    settings: IngestSettings
    sources: SourceLookup
    publisher: Publisher
    limiter: RateLimiter = field(default_factory=RateLimiter)
    # Erased ids (docs/privacy.md): their events are answered like any other, then dropped.
    suppression: SuppressionList | None = None

    async def source(self, write_key: str, field: str, events: int = 1) -> Source:
        return await authenticate(self.sources, write_key, field, self.settings.retry_after_s,
                                  events)

    async def take(
        self,
        source: Source,
        calls: Sequence[Any],
        *,
        kind: str | None = None,
        batch_context: Mapping[str, Any] | None = None,
        batch_sent_at: Instant | None = None,
    ) -> tuple[int, list[Rejection]]:
        """Publish the valid calls; (events acknowledged, calls rejected).

        `kind` is set for the single-call endpoints: there an invalid call refuses the request
        (400). In a batch each invalid item is listed and the valid ones are still published;
        only a batch with no valid item at all is refused.
        """
        self._admit(source, len(calls))
        arrival = Arrival.now(source.id, self.settings.max_event_bytes, self._max_future_skew)
        records: list[Record] = []
        rejections: list[Rejection] = []
        # Hashing an event's ids only while some id is suppressed keeps the common path free.
        suppression = self.suppression
        screening = suppression is not None and bool(suppression.hashes)
        suppressed = 0
        for index, call in enumerate(calls):
            try:
                record = to_record(call, arrival, kind=kind, batch_context=batch_context,
                                   batch_sent_at=batch_sent_at)
                if screening and suppression.covers(call):  # type: ignore[union-attr]
                    suppressed += 1
                    continue
                records.append(record)
            except InvalidEvent as exc:
                if kind is not None:
                    raise BadRequest(exc.field or "body", exc.problem, reason=exc.reason) from None
                rejections.append(Rejection(index, exc.field or f"batch[{index}]", exc.reason,
                                            exc.problem))
        if rejections:
            # Index and reason only: field values may be personal data.
            log.debug("batch items rejected: %s",
                      ", ".join(f"{r.index}:{r.reason}" for r in rejections))
            if not records and not suppressed:
                raise BadRequest("batch", "no item of the batch is valid; see rejected",
                                 rejected=rejections)
            for rejection in rejections:
                metrics.EVENTS_REJECTED.labels(reason=rejection.reason).inc()
        if suppressed:
            # Answered as accepted, as Segment does: the sender learns nothing about the list.
            metrics.EVENTS_SUPPRESSED.inc(suppressed)
            if not records:
                return suppressed, rejections
        try:
            await self.publisher.publish(records)
        except NotAcknowledged as exc:
            raise Unavailable(
                self.publisher.dependency,
                f"{exc}; the request is not acknowledged, retry it (with the same messageIds)",
                retry_after_s=self.settings.retry_after_s, events=len(records)
            ) from exc
        if len(records) == 1:
            ACCEPTED[records[0].type].inc()
        else:
            for call_type, count in Counter(r.type for r in records).items():
                ACCEPTED[call_type].inc(count)
        return len(records) + suppressed, rejections

    @functools.cached_property
    def _max_future_skew(self) -> timedelta:
        return timedelta(seconds=self.settings.max_future_skew_s)

    def _admit(self, source: Source, events: int) -> None:
        if source.rate_limit_per_s is None:
            return
        wait = self.limiter.admit(source.id, source.rate_limit_per_s, events)
        if wait:
            raise RateLimited(
                "writeKey", f"this source may send {source.rate_limit_per_s:g} events per "
                f"second; retry in {wait} s", retry_after_s=wait, events=events
            )
