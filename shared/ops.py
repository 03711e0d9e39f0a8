"""Operational HTTP endpoints every service exposes: /healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

ReadinessCheck = Callable[[], Awaitable[bool]]

READINESS_TIMEOUT_S = 3.0


async def _probe(check: ReadinessCheck) -> bool:
    try:
        return await asyncio.wait_for(check(), READINESS_TIMEOUT_S)
    except Exception:  # a probe that raises or hangs means "not ready", never a 500
        return False


def add_ops_routes(app: FastAPI, checks: Mapping[str, ReadinessCheck]) -> None:
    """Mount the ops endpoints; `checks` name the dependencies /readyz must reach."""

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        names = list(checks)
        results = await asyncio.gather(*(_probe(checks[n]) for n in names))
        status = dict(zip(names, results, strict=True))
        ok = all(results)
        return JSONResponse(
            {"status": "ready" if ok else "unavailable", "checks": status},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
