"""Prometheus metrics of ingest. Labels are routes, statuses, types and reasons: never contacts,
write keys or any other value taken from an event."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "polku_ingest_requests_total", "HTTP requests, by route and status", ["route", "status"]
)
EVENTS_ACCEPTED = Counter(
    "polku_ingest_events_accepted_total", "Events acknowledged by Kafka, by call type", ["type"]
)
EVENTS_REJECTED = Counter(
    "polku_ingest_events_rejected_total",
    "Events refused, alone or with the request that carried them, by reason",
    ["reason"],
)
EVENTS_SUPPRESSED = Counter(
    "polku_ingest_events_suppressed_total",
    "Events answered as accepted but dropped: one of their ids belongs to an erased person "
    "(docs/privacy.md)",
)
PRODUCE_SECONDS = Histogram(
    "polku_ingest_produce_seconds",
    "Time from handing a request's events to the producer to Kafka acknowledging all of them",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
KEY_LOOKUPS = Counter(
    "polku_ingest_key_lookups_total",
    "Write-key lookups, by outcome: found, unknown, failed (database), refused (over the budget "
    "for keys not known to be valid; no query sent)",
    ["outcome"],
)
BATCH_EVENTS = Histogram(
    "polku_ingest_batch_events", "Events per /v1/batch request",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
)
REQUEST_SECONDS = Histogram(
    "polku_ingest_request_seconds", "Time to answer a tracking request, by route", ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def accepted_by_type(types: Iterable[str]) -> dict[str, Any]:
    """EVENTS_ACCEPTED's child of each call type, looked up once: `labels()` costs more than the
    count itself, and ingest counts every request."""
    return {name: EVENTS_ACCEPTED.labels(type=name) for name in types}


class RequestMetrics:
    """ASGI middleware counting every request by its route template and status.

    Plain ASGI rather than BaseHTTPMiddleware: it adds no task or body copy to the hot path.
    The labelled children are kept (routes and statuses are few), as `labels()` is the larger
    part of counting a request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._counters: dict[tuple[str, int], Any] = {}
        self._timers: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app fails before starting a response

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            # The route template keeps the label set small; unmatched paths share one label.
            name = getattr(route, "path", None) or "unmatched"
            counter = self._counters.get((name, status))
            if counter is None:
                counter = self._counters[name, status] = REQUESTS.labels(route=name,
                                                                         status=str(status))
            counter.inc()
            if name.startswith("/v1/"):
                timer = self._timers.get(name)
                if timer is None:
                    timer = self._timers[name] = REQUEST_SECONDS.labels(route=name)
                timer.observe(time.perf_counter() - started)
