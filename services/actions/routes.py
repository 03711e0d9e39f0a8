"""The delivery API: dead letters, retries and bulk redelivery, endpoints. Every replay keeps
the delivery's original webhook-id and body, so receivers dedupe it like any retry."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.actions import store
from services.actions.settings import ADMIN_TOKEN_SETTING
from services.actions.store import Delivery, Endpoint
from shared.bearer import require_bearer

Status = Literal["pending", "delivered", "failed"]


class DeliveryOut(BaseModel):
    id: str
    webhook_id: str
    transition_id: str
    endpoint_id: str
    url: str
    journey: str
    contact: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None

    @classmethod
    def of(cls, d: Delivery) -> DeliveryOut:
        return cls(
            id=d.id, webhook_id=d.id, transition_id=d.transition_id, endpoint_id=d.endpoint_id,
            url=d.url, journey=d.journey_id, contact=d.contact, status=d.status,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at if d.status == store.PENDING else None,
            last_status=d.last_status, last_error=d.last_error,
            last_attempt_at=d.last_attempt_at, created_at=d.created_at,
            delivered_at=d.delivered_at, failed_at=d.failed_at,
        )


class DeliveryDetail(DeliveryOut):
    payload: str
    headers: dict[str, str]

    @classmethod
    def of(cls, d: Delivery) -> DeliveryDetail:
        return cls(**DeliveryOut.of(d).model_dump(), payload=d.payload, headers=dict(d.headers))


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]
    limit: int
    offset: int


class Redelivered(BaseModel):
    redelivered: int


class EndpointOut(BaseModel):
    id: str
    url: str
    disabled_at: datetime | None
    disabled_reason: str | None
    created_at: datetime

    @classmethod
    def of(cls, e: Endpoint) -> EndpointOut:
        return cls(id=e.id, url=e.url, disabled_at=e.disabled_at,
                   disabled_reason=e.disabled_reason, created_at=e.created_at)


def _authorised(request: Request) -> None:
    # Every route, reads included: only the admin token, never the read API's (shared/bearer.py).
    require_bearer(request, request.app.state.settings.admin_token, ADMIN_TOKEN_SETTING)


router = APIRouter(prefix="/v1", dependencies=[Depends(_authorised)])


def _aware(since: datetime | None) -> None:
    if since is not None and since.tzinfo is None:
        raise HTTPException(422, "since needs a time zone, e.g. 2026-11-23T08:00:00Z")


def _replayed(request: Request) -> None:
    request.app.state.dispatcher.wake()


@router.get("/deliveries")
async def list_deliveries(
    request: Request,
    status: Status | None = None,
    endpoint: str | None = None,
    transition: str | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DeliveryList:
    _aware(since)
    found = await store.list_deliveries(
        request.app.state.engine, status=status, endpoint_id=endpoint, since=since,
        transition_id=transition, limit=limit, offset=offset,
    )
    return DeliveryList(deliveries=[DeliveryOut.of(d) for d in found], limit=limit,
                        offset=offset)


@router.get("/deliveries/{delivery_id}")
async def get_delivery(request: Request, delivery_id: str) -> DeliveryDetail:
    return DeliveryDetail.of(await store.get_delivery(request.app.state.engine, delivery_id))


@router.post("/deliveries/redeliver", status_code=202)
async def redeliver(
    request: Request,
    since: datetime,
    status: Literal["failed", "delivered"] = "failed",
    endpoint: str | None = None,
) -> Redelivered:
    _aware(since)
    count = await store.redeliver(request.app.state.engine, status=status, since=since,
                                  now=request.app.state.clock.now(), endpoint_id=endpoint)
    _replayed(request)
    return Redelivered(redelivered=count)


@router.post("/deliveries/{delivery_id}/retry", status_code=202)
async def retry(request: Request, delivery_id: str) -> DeliveryOut:
    delivery = await store.retry_delivery(request.app.state.engine, delivery_id,
                                          request.app.state.clock.now())
    _replayed(request)
    return DeliveryOut.of(delivery)


@router.get("/endpoints")
async def list_endpoints(request: Request) -> list[EndpointOut]:
    return [EndpointOut.of(e) for e in await store.list_endpoints(request.app.state.engine)]


@router.post("/endpoints/{endpoint_id}/enable")
async def enable_endpoint(request: Request, endpoint_id: str) -> EndpointOut:
    endpoint = await store.enable_endpoint(request.app.state.engine, endpoint_id)
    request.app.state.dispatcher.enabled(endpoint_id)
    return EndpointOut.of(endpoint)


def add_delivery_routes(app: FastAPI) -> None:
    """Mount the API and translate the store's domain errors to HTTP statuses, in one place."""
    app.include_router(router)

    def problem(status: int) -> Any:
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status)
        return handler

    app.add_exception_handler(store.DeliveryNotFound, problem(404))
    app.add_exception_handler(store.EndpointNotFound, problem(404))
    app.add_exception_handler(store.DeliveryConflict, problem(409))
