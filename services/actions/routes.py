"""The delivery API: dead letters, retries and bulk redelivery, endpoints. Every replay keeps
the delivery's original webhook-id and body, so receivers dedupe it like any retry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from services.actions import store
from services.actions.dispatcher import Dispatcher
from services.actions.store import Delivery, Endpoint
from shared.bearer import ApiToken, require_bearer
from shared.clock import Clock
from shared.deps import AppPart

Status = Literal["pending", "delivered", "failed", "cancelled"]


@dataclass(frozen=True, slots=True)
class DeliveryApi:
    """What the delivery API works with, handed over once when the app starts (`provide`)."""

    engine: AsyncEngine
    token: ApiToken  # the admin token (ActionsSettings.delivery_api_token)
    clock: Clock
    # The worker's dispatcher: a replay wakes it, enabling an endpoint resets its breaker.
    dispatcher: Dispatcher


DELIVERY_API: AppPart[DeliveryApi] = AppPart("delivery_api")
provide = DELIVERY_API.provide
delivery_api_of = DELIVERY_API.of
Api = Annotated[DeliveryApi, Depends(DELIVERY_API)]


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


def _authorised(request: Request, api: Api) -> None:
    # Every route, reads included: only the admin token, never the read API's (shared/bearer.py).
    require_bearer(request, api.token.value, api.token.setting)


router = APIRouter(prefix="/v1", dependencies=[Depends(_authorised)])


def _aware(since: datetime | None) -> None:
    if since is not None and since.tzinfo is None:
        raise HTTPException(422, "since needs a time zone, e.g. 2026-11-23T08:00:00Z")


@router.get("/deliveries")
async def list_deliveries(
    api: Api,
    status: Status | None = None,
    endpoint: str | None = None,
    transition: str | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DeliveryList:
    _aware(since)
    found = await store.list_deliveries(
        api.engine, status=status, endpoint_id=endpoint, since=since,
        transition_id=transition, limit=limit, offset=offset,
    )
    return DeliveryList(deliveries=[DeliveryOut.of(d) for d in found], limit=limit,
                        offset=offset)


@router.get("/deliveries/{delivery_id}")
async def get_delivery(api: Api, delivery_id: str) -> DeliveryDetail:
    return DeliveryDetail.of(await store.get_delivery(api.engine, delivery_id))


@router.post("/deliveries/redeliver", status_code=202)
async def redeliver(
    api: Api,
    since: datetime,
    status: Literal["failed", "delivered"] = "failed",
    endpoint: str | None = None,
) -> Redelivered:
    _aware(since)
    count = await store.redeliver(api.engine, status=status, since=since,
                                  now=api.clock.now(), endpoint_id=endpoint)
    api.dispatcher.wake()
    return Redelivered(redelivered=count)


@router.post("/deliveries/{delivery_id}/retry", status_code=202)
async def retry(api: Api, delivery_id: str) -> DeliveryOut:
    delivery = await store.retry_delivery(api.engine, delivery_id, api.clock.now())
    api.dispatcher.wake()
    return DeliveryOut.of(delivery)


@router.get("/endpoints")
async def list_endpoints(api: Api) -> list[EndpointOut]:
    return [EndpointOut.of(e) for e in await store.list_endpoints(api.engine)]


@router.post("/endpoints/{endpoint_id}/enable")
async def enable_endpoint(api: Api, endpoint_id: str) -> EndpointOut:
    endpoint = await store.enable_endpoint(api.engine, endpoint_id)
    api.dispatcher.enabled(endpoint_id)
    return EndpointOut.of(endpoint)


def add_delivery_routes(app: FastAPI) -> None:
    """Mount the API and translate the store's domain errors to HTTP statuses, in one place.
    The routes serve from the DeliveryApi given to `provide` when the app starts."""
    app.include_router(router)

    def problem(status: int) -> Any:
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status)
        return handler

    app.add_exception_handler(store.DeliveryNotFound, problem(404))
    app.add_exception_handler(store.EndpointNotFound, problem(404))
    app.add_exception_handler(store.DeliveryConflict, problem(409))
