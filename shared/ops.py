"""What every service's HTTP app has: /healthz, /readyz and /metrics, and the answer to a path
or method it does not serve, in the documented error shape (docs/ingest.md) rather than
FastAPI's `{"detail": ...}`.

/metrics answers every readiness check too (`polku_ready{check}`), so an alert sees a service
that is up but cannot work even where nothing probes /readyz (compose, systemd). It exposes no
`*_created` series: prometheus_client adds one beside every counter and histogram series,
which Prometheus keeps as series of their own, noise in every scrape (the switch is read when
/metrics answers, so it holds whatever was imported first).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

ReadinessCheck = Callable[[], Awaitable[bool]]

READINESS_TIMEOUT_S = 3.0

# At import, before any scrape: every service app and `polku dev` mount add_ops_routes.
disable_created_metrics()  # type: ignore[no-untyped-call]

READY = Gauge("polku_ready", "1 if the readiness check passed when last probed (/readyz or a "
              "scrape of /metrics), else 0", ["check"])


async def _probe(check: ReadinessCheck) -> bool:
    try:
        return await asyncio.wait_for(check(), READINESS_TIMEOUT_S)
    except Exception:  # a probe that raises or hangs means "not ready", never a 500
        return False


async def _readiness(checks: Mapping[str, ReadinessCheck]) -> dict[str, bool]:
    """Every check at once, each also kept in `polku_ready`."""
    names = list(checks)
    results = await asyncio.gather(*(_probe(checks[n]) for n in names))
    for name, ok in zip(names, results, strict=True):
        READY.labels(name).set(1 if ok else 0)
    return dict(zip(names, results, strict=True))


async def _unrouted(request: Request, exc: Exception) -> Response:
    """A path no route serves (404) or a method its route does not take (405), as a `Problem`.

    Only the router's own answers, which carry nothing but the status phrase: a route that
    raises HTTPException with a message of its own keeps FastAPI's answer.
    """
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status not in (404, 405) or exc.detail != HTTPStatus(status).phrase:
        return await http_exception_handler(request, exc)
    path = request.url.path
    if status == 404:
        code, field, problem = "not_found", "path", f"{path} is not an endpoint of this service"
    else:
        allowed = (exc.headers or {}).get("Allow", "")
        code, field = "method_not_allowed", "method"
        problem = f"{request.method} is not allowed on {path}; use {allowed or 'another method'}"
    return JSONResponse({"success": False, "code": code, "field": field,
                         "message": f"{field}: {problem}"},
                        status_code=status, headers=exc.headers)


def add_ops_routes(app: FastAPI, checks: Mapping[str, ReadinessCheck]) -> None:
    """Mount the ops endpoints and the 404/405 answer; `checks` name the dependencies /readyz
    must reach."""
    app.add_exception_handler(StarletteHTTPException, _unrouted)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        status = await _readiness(checks)
        ok = all(status.values())
        return JSONResponse(
            {"status": "ready" if ok else "unavailable", "checks": status},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        await _readiness(checks)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
