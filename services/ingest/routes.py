"""The Segment HTTP Tracking API: /v1/track, identify, page, screen, group, alias and batch.

Bodies are read as raw JSON (see schemas.py for why); refusals are raised as IngestError and
turned into responses by `refused`, the one handler (app.py registers it with FastAPI;
direct.py, which serves these routes without FastAPI's routing, calls it itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from services.ingest import metrics
from services.ingest.auth import key_from_body, key_from_header
from services.ingest.body import read_json
from services.ingest.errors import (
    BadRequest,
    IngestError,
    InvalidEvent,
    PayloadTooLarge,
    Rejection,
)
from services.ingest.intake import Intake
from services.ingest.schemas import Accepted, Problem, request_body
from services.ingest.sources import Source
from services.ingest.touchpoint import parse_sent_at
from shared.deps import AppPart

router = APIRouter(prefix="/v1", tags=["tracking"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Accepted, "description": "Every accepted event is acknowledged by Kafka"},
    400: {"model": Problem, "description": "Invalid JSON or an invalid field (named)"},
    401: {"model": Problem, "description": "Missing, unknown or revoked write key"},
    413: {"model": Problem, "description": "Body, event or batch over the size limits"},
    415: {"model": Problem, "description": "Content-Encoding other than identity or gzip"},
    429: {"model": Problem, "description": "The source's rate limit; see Retry-After"},
    503: {"model": Problem, "description": "Kafka (or the key store) unavailable; see "
          "Retry-After. Nothing in the request is acknowledged: retry it."},
}


def _operation(endpoint: str) -> dict[str, Any]:
    """OpenAPI extras: the documented body, and the write key (Basic, or writeKey in the body)."""
    return {"requestBody": request_body(endpoint), "security": [{"writeKey": []}, {}]}


INTAKE: AppPart[Intake] = AppPart("intake")
provide = INTAKE.provide
intake_of = INTAKE.of


async def _source_from_header(intake: Intake, request: Request) -> Source | None:
    key = key_from_header(request.headers.get("authorization"))
    return None if key is None else await intake.source(key, "Authorization")


async def refused(request: Request, exc: IngestError) -> JSONResponse:
    """The one place a refusal becomes an HTTP answer (and a count in the rejections metric)."""
    if exc.rejected:
        for rejection in exc.rejected:
            metrics.EVENTS_REJECTED.labels(reason=rejection.reason).inc()
    elif exc.events:
        metrics.EVENTS_REJECTED.labels(reason=exc.reason).inc(exc.events)
    body: dict[str, Any] = {"success": False, "code": exc.reason, "field": exc.field,
                            "message": str(exc)}
    if exc.rejected:
        body["rejected"] = [r.as_json() for r in exc.rejected]
    return JSONResponse(body, status_code=exc.status, headers=dict(exc.headers))


def _accepted(accepted: int, rejected: Sequence[Rejection]) -> Response:
    if not rejected:
        # The usual answer, as JSONResponse would render it, without encoding a dict each time.
        return Response(b'{"success":true,"accepted":%d,"rejected":[]}' % accepted,
                        media_type="application/json")
    return JSONResponse({"success": True, "accepted": accepted,
                         "rejected": [r.as_json() for r in rejected]})


async def _single(request: Request, intake: Intake, kind: str) -> Response:
    # A header key is checked before the body is read, so bad keys cost no parsing.
    source = await _source_from_header(intake, request)
    body = await read_json(request, intake.settings.max_event_bytes)
    if not isinstance(body, dict):
        raise BadRequest("body", "must be a JSON object (one call)")
    if source is None:
        source = await intake.source(key_from_body(body, 1), "writeKey")
    accepted, _ = await intake.take(source, [body], kind=kind)
    return _accepted(accepted, [])


# The tracking routes take their Intake from intake_of(request.app), not through Depends: a
# dependency makes FastAPI solve it per request, which cost ~125 µs of CPU per single event
# (bench.ingest: 313 -> 438 µs/request), a third of what ingest spends on one.
def _single_route(kind: str, summary: str) -> None:
    async def endpoint(request: Request) -> Response:
        return await _single(request, intake_of(request.app), kind)

    endpoint.__name__ = kind
    router.add_api_route(
        f"/{kind}", endpoint, methods=["POST"], summary=summary, responses=RESPONSES,
        openapi_extra=_operation(kind), response_class=JSONResponse,
    )


_single_route("track", "Record an action the contact took")
_single_route("identify", "Tie a contact to their traits")
_single_route("page", "Record a page view")
_single_route("screen", "Record a mobile screen view")
_single_route("group", "Tie a contact to a group (company, account)")
_single_route("alias", "Merge a previous id into a userId")


@router.post(
    "/batch", summary="Up to 2,500 calls of any type in one request", responses=RESPONSES,
    openapi_extra=_operation("batch"), response_class=JSONResponse,
)
async def batch(request: Request) -> Response:
    intake = intake_of(request.app)
    settings = intake.settings
    source = await _source_from_header(intake, request)
    body = await read_json(request, settings.max_batch_bytes)
    if not isinstance(body, dict):
        raise BadRequest("body", 'must be a JSON object: {"batch": [...]}')
    calls = body.get("batch")
    if not isinstance(calls, list):
        raise BadRequest("batch", "must be an array of calls", reason="missing_field"
                         if calls is None else "invalid_field")
    events = len(calls)
    if source is None:
        source = await intake.source(key_from_body(body, events), "writeKey", events)
    if not calls:
        raise BadRequest("batch", "is empty", events=0)
    if events > settings.max_batch_events:
        raise PayloadTooLarge("batch", f"has {events:,} calls; at most "
                              f"{settings.max_batch_events:,} are allowed per request",
                              events=events)
    context = body.get("context")
    if context is not None and not isinstance(context, dict):
        raise BadRequest("context", "must be a JSON object", events=events)
    try:
        sent_at = parse_sent_at(body.get("sentAt"))
    except InvalidEvent as exc:
        raise BadRequest("sentAt", exc.problem, events=events) from None
    metrics.BATCH_EVENTS.observe(events)
    accepted, rejected = await intake.take(source, calls, batch_context=context,
                                           batch_sent_at=sent_at)
    return _accepted(accepted, rejected)
