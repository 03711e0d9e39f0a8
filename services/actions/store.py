"""Deliveries and endpoints in PostgreSQL: creating, claiming, recording attempts, replaying.

Guarantees kept here:
- a delivery's id is its `webhook-id`; creating one twice (a redelivered transition) inserts
  nothing (ON CONFLICT DO NOTHING), so each endpoint gets one logical delivery per transition;
- a worker claims due deliveries with FOR UPDATE SKIP LOCKED and a lease, so several workers
  share the work and a crashed worker's deliveries are taken over once its lease runs out
  (SQLite, the embedded mode, has one worker and one connection: its claim is a plain
  select-then-update inside one transaction);
- a new delivery may be inserted already leased to the worker creating it (`create_and_claim`):
  the same lease a claim takes, written in the same statement as the delivery, so it is taken
  over the same way if that worker dies before attempting it;
- an attempt's result is written only by the claim that made it (matching `claim_token`);
- no delivery is created for an erased person, and an erase cancels theirs (`cancelled`, never
  claimed, retried or redelivered; shared/privacy/erasure.py).
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.actions.deliveries import PlannedDelivery
from shared.db.dialect import insert, is_postgres
from shared.db.tables import webhook_deliveries as deliveries
from shared.db.tables import webhook_endpoints as endpoints
from shared.privacy import hold_against_erasure, suppressed_among

PENDING, DELIVERED, FAILED, CANCELLED = "pending", "delivered", "failed", "cancelled"
STATUSES = (PENDING, DELIVERED, FAILED, CANCELLED)
_INSERT_CHUNK = 1000


class DeliveryNotFound(Exception):
    def __init__(self, delivery_id: str) -> None:
        super().__init__(f"there is no delivery {delivery_id}")


class EndpointNotFound(Exception):
    def __init__(self, endpoint_id: str) -> None:
        super().__init__(f"there is no endpoint {endpoint_id}")


class DeliveryConflict(Exception):
    """The delivery cannot be retried in its current state (already pending, endpoint off)."""


@dataclass(frozen=True)
class Delivery:
    id: str
    transition_id: str
    endpoint_id: str
    url: str
    journey_id: str
    contact: str
    payload: str
    secret_env: str | None
    secret_file: str | None
    headers: Mapping[str, str]
    status: str
    attempts: int
    next_attempt_at: datetime
    claim_token: str | None
    last_status: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Delivery:
        values = dict(row._mapping)
        if isinstance(values["headers"], str):  # raw JSONB from a textual query
            values["headers"] = json.loads(values["headers"])
        return cls(**{name: values[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    disabled_at: datetime | None
    disabled_reason: str | None
    created_at: datetime


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt did to its delivery; written in batches by the dispatcher."""

    delivery_id: str
    claim_token: str
    endpoint_id: str
    status: str  # the delivery's new status: pending (retry) | delivered | failed
    attempted_at: datetime
    next_attempt_at: datetime | None = None
    http_status: int | None = None
    error: str | None = None
    gone: bool = False  # 410: disable the endpoint and dead-letter what waits for it


@dataclass(frozen=True)
class Claim:
    """A claim made as deliveries are created: up to `room[endpoint]` of each endpoint's new
    deliveries are leased to `token` in the same insert, so the worker that creates them
    attempts them at once, without claiming them from the database first."""

    token: str
    lease_until: datetime
    room: Mapping[str, int]


@dataclass(frozen=True)
class Created:
    deliveries: list[PlannedDelivery]  # every delivery created
    claimed: list[Delivery]  # those of them leased to the claim's token


async def create_deliveries(
    engine: AsyncEngine, planned: Sequence[PlannedDelivery], now: datetime,
    first_delay_s: float = 0.0,
) -> list[PlannedDelivery]:
    """Insert the deliveries that don't exist yet, in one transaction; returns those created.
    Their first attempt is due `first_delay_s` after `now` (the retry schedule's first delay).
    """
    return (await create_and_claim(engine, planned, now, first_delay_s)).deliveries


async def create_and_claim(
    engine: AsyncEngine, planned: Sequence[PlannedDelivery], now: datetime,
    first_delay_s: float = 0.0, claim: Claim | None = None,
) -> Created:
    """create_deliveries, leasing some of them to `claim` as they are inserted (only when they
    are due at once: `first_delay_s` 0).

    Deliveries to an endpoint disabled by a 410 are created as dead letters straight away, so
    they show up in GET /v1/deliveries?status=failed and can be replayed once it is re-enabled.
    A delivery that already exists (a redelivered transition) is neither created nor claimed.
    """
    # A batch may carry the same transition twice (the stager publishes at least once).
    unique: dict[str, PlannedDelivery] = {}
    for p in planned:
        unique.setdefault(p.id, p)
    planned = list(unique.values())
    if not planned:
        return Created([], [])
    async with engine.begin() as conn:
        # Erased people get no deliveries, even from transitions still on the log.
        await hold_against_erasure(conn)
        suppressed = await suppressed_among(conn, {p.contact for p in planned})
        planned = [p for p in planned if p.contact not in suppressed]
        if not planned:
            return Created([], [])
        first_attempt_at = now + timedelta(seconds=first_delay_s)
        room = dict(claim.room) if claim is not None and first_delay_s <= 0 else {}
        rows = []
        for p in planned:
            leased = room.get(p.endpoint_id, 0) > 0
            if leased:
                room[p.endpoint_id] -= 1
            rows.append(_delivery_row(p, now, first_attempt_at, claim if leased else None))
        urls = {p.endpoint_id: p.url for p in planned}
        if is_postgres(conn):
            inserted = await _insert_postgres(conn, rows, urls)
        else:
            inserted = await _insert_portable(conn, rows, urls)
    return Created(
        [p for p in planned if p.id in inserted],
        [_claimed(p, row) for p, row in zip(planned, rows, strict=True) if inserted.get(p.id)],
    )


# create_and_claim's insert on PostgreSQL, one statement: add the endpoints not known yet, and
# insert the deliveries that are new, those of a disabled endpoint as dead letters and never
# leased. (The endpoints the CTE adds are never disabled, so the check need not see them.) It is
# one fixed text over arrays whatever the batch size, so it is prepared once per connection, as
# services/stager/storage/postgres.py does; `headers` travels as text.
_INSERT_DELIVERIES = sa.text("""
WITH added AS (
    INSERT INTO webhook_endpoints (id, url)
    SELECT * FROM unnest(CAST(:endpoint_ids AS text[]), CAST(:urls AS text[]))
    ON CONFLICT (id) DO NOTHING
), disabled AS (
    SELECT id, disabled_reason FROM webhook_endpoints
    WHERE id = ANY(CAST(:endpoint_ids AS text[])) AND disabled_at IS NOT NULL
)
INSERT INTO webhook_deliveries (id, transition_id, endpoint_id, journey_id, contact, payload,
                                secret_env, secret_file, headers, status, attempts,
                                next_attempt_at, lease_until, claim_token, last_error,
                                created_at, failed_at)
SELECT d.id, d.transition_id, d.endpoint_id, d.journey_id, d.contact, d.payload, d.secret_env,
       d.secret_file, CAST(d.headers AS jsonb),
       CASE WHEN x.id IS NULL THEN 'pending' ELSE 'failed' END, 0, d.next_attempt_at,
       CASE WHEN x.id IS NULL THEN d.lease_until END,
       CASE WHEN x.id IS NULL THEN d.claim_token END,
       CASE WHEN x.id IS NOT NULL THEN 'endpoint disabled: ' || coalesce(x.disabled_reason, '')
       END,
       d.created_at, CASE WHEN x.id IS NOT NULL THEN d.created_at END
FROM unnest(CAST(:id AS text[]), CAST(:transition_id AS text[]), CAST(:endpoint_id AS text[]),
            CAST(:journey_id AS text[]), CAST(:contact AS text[]), CAST(:payload AS text[]),
            CAST(:secret_env AS text[]), CAST(:secret_file AS text[]),
            CAST(:headers AS text[]), CAST(:next_attempt_at AS timestamptz[]),
            CAST(:lease_until AS timestamptz[]), CAST(:claim_token AS text[]),
            CAST(:created_at AS timestamptz[]))
    AS d(id, transition_id, endpoint_id, journey_id, contact, payload, secret_env, secret_file,
         headers, next_attempt_at, lease_until, claim_token, created_at)
LEFT JOIN disabled x ON x.id = d.endpoint_id
ON CONFLICT (id) DO NOTHING
RETURNING id, claim_token IS NOT NULL AS leased
""")
_ARRAYS = ("id", "transition_id", "endpoint_id", "journey_id", "contact", "payload",
           "secret_env", "secret_file", "headers", "next_attempt_at", "lease_until",
           "claim_token", "created_at")


async def _insert_postgres(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]],
                           urls: Mapping[str, str]) -> dict[str, bool]:
    """Insert the rows whose id is new; returns their ids, and whether each was leased."""
    columns: dict[str, list[Any]] = {name: [row[name] for row in rows] for name in _ARRAYS}
    columns["headers"] = [json.dumps(h) for h in columns["headers"]]
    endpoint_ids = sorted(urls)
    found = await conn.execute(_INSERT_DELIVERIES, {
        **columns, "endpoint_ids": endpoint_ids, "urls": [urls[e] for e in endpoint_ids],
    })
    return {row.id: row.leased for row in found}


async def _insert_portable(conn: AsyncConnection, rows: Sequence[dict[str, Any]],
                           urls: Mapping[str, str]) -> dict[str, bool]:
    """_insert_postgres in steps (SQLite)."""
    await conn.execute(
        insert(conn, endpoints).on_conflict_do_nothing(index_elements=["id"]),
        [{"id": eid, "url": url} for eid, url in sorted(urls.items())],
    )
    disabled = {
        row.id: row.disabled_reason
        for row in await conn.execute(
            sa.select(endpoints.c.id, endpoints.c.disabled_reason).where(
                endpoints.c.id.in_(list(urls)), endpoints.c.disabled_at.is_not(None)
            )
        )
    }
    for row in rows:
        if row["endpoint_id"] in disabled:
            row.update(status=FAILED, lease_until=None, claim_token=None,
                       last_error=f"endpoint disabled: {disabled[row['endpoint_id']] or ''}",
                       failed_at=row["created_at"])
    statement = (
        insert(conn, deliveries).on_conflict_do_nothing(index_elements=["id"])
        .returning(deliveries.c.id)
    )
    leased = {row["id"]: row["claim_token"] is not None for row in rows}
    created: dict[str, bool] = {}
    for i in range(0, len(rows), _INSERT_CHUNK):
        result = await conn.execute(statement, rows[i:i + _INSERT_CHUNK])
        created.update((new, leased[new]) for new in result.scalars())
    return created


def _delivery_row(p: PlannedDelivery, now: datetime, first_attempt_at: datetime,
                  claim: Claim | None) -> dict[str, Any]:
    return {
        "id": p.id,
        "transition_id": p.transition_id,
        "endpoint_id": p.endpoint_id,
        "journey_id": p.journey_id,
        "contact": p.contact,
        "payload": p.payload,
        "secret_env": p.secret_env,
        "secret_file": p.secret_file,
        "headers": dict(p.headers),
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": first_attempt_at,
        "lease_until": claim.lease_until if claim else None,
        "claim_token": claim.token if claim else None,
        "last_error": None,
        "created_at": now,
        "failed_at": None,
    }


def _claimed(p: PlannedDelivery, row: Mapping[str, Any]) -> Delivery:
    """The delivery as a claim would have read it back."""
    return Delivery(
        id=p.id, transition_id=p.transition_id, endpoint_id=p.endpoint_id, url=p.url,
        journey_id=p.journey_id, contact=p.contact, payload=p.payload,
        secret_env=p.secret_env, secret_file=p.secret_file, headers=row["headers"],
        status=PENDING, attempts=0, next_attempt_at=row["next_attempt_at"],
        claim_token=row["claim_token"], last_status=None, last_error=None,
        last_attempt_at=None, created_at=row["created_at"], delivered_at=None, failed_at=None,
    )


_CLAIM = sa.text("""
WITH slots AS (
    SELECT * FROM unnest(CAST(:slot_ids AS text[]), CAST(:slot_free AS int[])) AS s(id, free)
), picked AS (
    SELECT d.id, e.url
    FROM webhook_endpoints e
    LEFT JOIN slots ON slots.id = e.id
    CROSS JOIN LATERAL (
        SELECT w.id FROM webhook_deliveries w
        WHERE w.endpoint_id = e.id AND w.status = 'pending' AND w.next_attempt_at <= :now
          AND (w.lease_until IS NULL OR w.lease_until <= :now)
          AND w.id <> ALL(CAST(:exclude AS text[]))
        ORDER BY w.next_attempt_at
        LIMIT least(coalesce(slots.free, :default_free), :total)
        FOR UPDATE OF w SKIP LOCKED
    ) d
    WHERE e.disabled_at IS NULL
    ORDER BY random()
    LIMIT :total
)
UPDATE webhook_deliveries w SET lease_until = :lease_until, claim_token = :token
FROM picked WHERE w.id = picked.id
RETURNING w.*, picked.url
""")


async def claim_due(
    engine: AsyncEngine,
    *,
    now: datetime,
    lease_until: datetime,
    slots: Mapping[str, int],
    default_slots: int,
    total: int,
    exclude: Sequence[str] = (),
) -> tuple[str, list[Delivery]]:
    """Lease up to `total` due deliveries, at most `slots[endpoint]` (else `default_slots`) per
    endpoint, skipping rows another worker holds. Returns the claim token and the deliveries."""
    token = str(uuid.uuid4())
    if total <= 0:
        return token, []
    if engine.dialect.name != "postgresql":
        async with engine.begin() as conn:
            claimed = await _claim_portable(conn, token, now, lease_until, slots, default_slots,
                                            total, exclude)
        return token, claimed
    ids = list(slots)
    async with engine.connect() as conn:
        # One statement, atomic by itself: no BEGIN/COMMIT round trips.
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        rows = await conn.execute(_CLAIM, {
            "slot_ids": ids, "slot_free": [slots[i] for i in ids], "default_free": default_slots,
            "now": now, "exclude": list(exclude), "total": total, "lease_until": lease_until,
            "token": token,
        })
        claimed = [Delivery.from_row(row) for row in rows]
    return token, claimed


async def _claim_portable(
    conn: AsyncConnection, token: str, now: datetime, lease_until: datetime,
    slots: Mapping[str, int], default_slots: int, total: int, exclude: Sequence[str],
) -> list[Delivery]:
    """claim_due for a database with a single writer (SQLite): the same choice, in two steps."""
    rank = sa.func.row_number().over(partition_by=deliveries.c.endpoint_id,
                                     order_by=deliveries.c.next_attempt_at).label("rank")
    due = (
        sa.select(deliveries.c.id, deliveries.c.endpoint_id, rank)
        .join(endpoints, endpoints.c.id == deliveries.c.endpoint_id)
        .where(deliveries.c.status == PENDING, deliveries.c.next_attempt_at <= now,
               sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until <= now),
               endpoints.c.disabled_at.is_(None), deliveries.c.id.not_in(list(exclude)))
        .subquery()
    )
    most = max([default_slots, *slots.values()])
    rows = await conn.execute(sa.select(due.c.id, due.c.endpoint_id, due.c.rank)
                              .where(due.c.rank <= most))
    picked = [i for i, endpoint, n in rows if n <= slots.get(endpoint, default_slots)]
    random.shuffle(picked)  # as the PostgreSQL claim: no endpoint always goes first
    picked = picked[:total]
    if not picked:
        return []
    await conn.execute(deliveries.update().where(deliveries.c.id.in_(picked))
                       .values(lease_until=lease_until, claim_token=token))
    return [Delivery.from_row(row)
            for row in await conn.execute(_WITH_URL.where(deliveries.c.claim_token == token))]


_RECORD = (
    deliveries.update()
    .where(deliveries.c.id == sa.bindparam("b_id"),
           deliveries.c.claim_token == sa.bindparam("b_token"))
    .values(
        status=sa.bindparam("b_status"),
        attempts=deliveries.c.attempts + 1,
        next_attempt_at=sa.func.coalesce(sa.bindparam("b_next", type_=sa.DateTime(timezone=True)),
                                         deliveries.c.next_attempt_at),
        lease_until=None,
        claim_token=None,
        last_status=sa.bindparam("b_http_status", type_=sa.Integer),
        last_error=sa.bindparam("b_error", type_=sa.Text),
        last_attempt_at=sa.bindparam("b_at", type_=sa.DateTime(timezone=True)),
        delivered_at=sa.bindparam("b_delivered_at", type_=sa.DateTime(timezone=True)),
        failed_at=sa.bindparam("b_failed_at", type_=sa.DateTime(timezone=True)),
    )
)

_RELEASE = (
    deliveries.update()
    .where(deliveries.c.id == sa.bindparam("b_id"),
           deliveries.c.claim_token == sa.bindparam("b_token"))
    .values(lease_until=None, claim_token=None)
)


# record_results on PostgreSQL when no endpoint answered 410: one statement for the batch.
_RECORD_BATCH = sa.text("""
UPDATE webhook_deliveries w SET
    status = r.status, attempts = w.attempts + 1,
    next_attempt_at = coalesce(r.next_at, w.next_attempt_at),
    lease_until = NULL, claim_token = NULL,
    last_status = r.http_status, last_error = r.error, last_attempt_at = r.at,
    delivered_at = r.delivered_at, failed_at = r.failed_at
FROM unnest(CAST(:ids AS text[]), CAST(:tokens AS text[]), CAST(:statuses AS text[]),
            CAST(:next_at AS timestamptz[]), CAST(:http_status AS int[]),
            CAST(:errors AS text[]), CAST(:at AS timestamptz[]),
            CAST(:delivered_at AS timestamptz[]), CAST(:failed_at AS timestamptz[]))
    AS r(id, token, status, next_at, http_status, error, at, delivered_at, failed_at)
WHERE w.id = r.id AND w.claim_token = r.token
""")


async def record_results(
    engine: AsyncEngine, results: Sequence[AttemptResult], released: Sequence[tuple[str, str]]
) -> int:
    """Write attempt results and give back leases never used (id, token).

    Returns how many waiting deliveries became dead letters because their endpoint answered
    410 Gone (besides the ones in `results`). A 410 disables its endpoint in the same
    transaction as the results; otherwise each row's update stands alone (on PostgreSQL one
    statement writes all the results, without a transaction around it).
    """
    if engine.dialect.name == "postgresql" and not any(r.gone for r in results):
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            if results:
                await conn.execute(_RECORD_BATCH, _batch_params(results))
            if released:
                await conn.execute(_RELEASE, [{"b_id": i, "b_token": t} for i, t in released])
        return 0
    swept = 0
    async with engine.begin() as conn:
        if results:
            await conn.execute(_RECORD, [_result_params(r) for r in results])
        if released:
            await conn.execute(_RELEASE, [{"b_id": i, "b_token": t} for i, t in released])
        for result in results:
            if result.gone:
                swept += await _disable(conn, result.endpoint_id, result.attempted_at,
                                        "answered 410 Gone")
    return swept


def _batch_params(results: Sequence[AttemptResult]) -> dict[str, list[Any]]:
    return {
        "ids": [r.delivery_id for r in results],
        "tokens": [r.claim_token for r in results],
        "statuses": [r.status for r in results],
        "next_at": [r.next_attempt_at for r in results],
        "http_status": [r.http_status for r in results],
        "errors": [r.error for r in results],
        "at": [r.attempted_at for r in results],
        "delivered_at": [r.attempted_at if r.status == DELIVERED else None for r in results],
        "failed_at": [r.attempted_at if r.status == FAILED else None for r in results],
    }


def _result_params(r: AttemptResult) -> dict[str, Any]:
    return {
        "b_id": r.delivery_id, "b_token": r.claim_token, "b_status": r.status,
        "b_next": r.next_attempt_at, "b_http_status": r.http_status, "b_error": r.error,
        "b_at": r.attempted_at,
        "b_delivered_at": r.attempted_at if r.status == DELIVERED else None,
        "b_failed_at": r.attempted_at if r.status == FAILED else None,
    }


async def _disable(conn: Any, endpoint_id: str, now: datetime, reason: str) -> int:
    await conn.execute(
        endpoints.update().where(endpoints.c.id == endpoint_id, endpoints.c.disabled_at.is_(None))
        .values(disabled_at=now, disabled_reason=reason)
    )
    # Clearing the claim token voids any attempt still running elsewhere for these.
    swept = await conn.execute(
        deliveries.update()
        .where(deliveries.c.endpoint_id == endpoint_id, deliveries.c.status == PENDING)
        .values(status=FAILED, failed_at=now, lease_until=None, claim_token=None,
                last_error=f"endpoint disabled: {reason}")
    )
    return int(swept.rowcount or 0)


def _listing(status: str | None, endpoint_id: str | None, since: datetime | None
             ) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if status is not None:
        where.append(deliveries.c.status == status)
    if endpoint_id is not None:
        where.append(deliveries.c.endpoint_id == endpoint_id)
    if since is not None:
        where.append(deliveries.c.created_at >= since)
    return where


_WITH_URL = sa.select(deliveries, endpoints.c.url).join(
    endpoints, endpoints.c.id == deliveries.c.endpoint_id
)


async def list_deliveries(
    engine: AsyncEngine, *, status: str | None = None, endpoint_id: str | None = None,
    since: datetime | None = None, transition_id: str | None = None, limit: int = 100,
    offset: int = 0,
) -> list[Delivery]:
    where = _listing(status, endpoint_id, since)
    if transition_id is not None:
        where.append(deliveries.c.transition_id == transition_id)
    query = (_WITH_URL.where(*where)
             .order_by(deliveries.c.created_at.desc(), deliveries.c.id).limit(limit).offset(offset))
    async with engine.connect() as conn:
        return [Delivery.from_row(row) for row in await conn.execute(query)]


async def get_delivery(engine: AsyncEngine, delivery_id: str) -> Delivery:
    async with engine.connect() as conn:
        row = (await conn.execute(_WITH_URL.where(deliveries.c.id == delivery_id))).first()
    if row is None:
        raise DeliveryNotFound(delivery_id)
    return Delivery.from_row(row)


_REPLAY = {
    "status": PENDING, "attempts": 0, "lease_until": None, "claim_token": None,
    "delivered_at": None, "failed_at": None,
}


async def retry_delivery(engine: AsyncEngine, delivery_id: str, now: datetime) -> Delivery:
    """Deliver a dead letter (or a delivered one) again, from the start of the schedule, with
    the same webhook-id and body."""
    async with engine.begin() as conn:
        row = (await conn.execute(
            sa.select(deliveries.c.status, endpoints.c.disabled_at)
            .join(endpoints, endpoints.c.id == deliveries.c.endpoint_id)
            .where(deliveries.c.id == delivery_id).with_for_update(of=deliveries)
        )).first()
        if row is None:
            raise DeliveryNotFound(delivery_id)
        if row.disabled_at is not None:
            raise DeliveryConflict("its endpoint is disabled; enable it first "
                                   "(POST /v1/endpoints/{id}/enable)")
        if row.status == PENDING:
            raise DeliveryConflict("the delivery is already pending")
        if row.status == CANCELLED:
            raise DeliveryConflict("the delivery was cancelled by an erasure; its body is gone")
        await conn.execute(deliveries.update().where(deliveries.c.id == delivery_id)
                           .values(next_attempt_at=now, **_REPLAY))
    return await get_delivery(engine, delivery_id)


async def redeliver(
    engine: AsyncEngine, *, status: str, since: datetime, now: datetime,
    endpoint_id: str | None = None,
) -> int:
    """Bulk replay: every delivery in `status` created at or after `since`, except those of
    disabled endpoints, goes back to pending with its webhook-id. Returns how many."""
    enabled = sa.select(endpoints.c.id).where(endpoints.c.disabled_at.is_(None))
    async with engine.begin() as conn:
        result = await conn.execute(
            deliveries.update()
            .where(*_listing(status, endpoint_id, since),
                   deliveries.c.endpoint_id.in_(enabled.scalar_subquery()))
            .values(next_attempt_at=now, **_REPLAY)
        )
    return int(result.rowcount or 0)


async def list_endpoints(engine: AsyncEngine) -> list[Endpoint]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(endpoints).order_by(endpoints.c.url))
        return [Endpoint(r.id, r.url, r.disabled_at, r.disabled_reason, r.created_at)
                for r in rows]


async def enable_endpoint(engine: AsyncEngine, endpoint_id: str) -> Endpoint:
    async with engine.begin() as conn:
        result = await conn.execute(
            endpoints.update().where(endpoints.c.id == endpoint_id)
            .values(disabled_at=None, disabled_reason=None).returning(*endpoints.c)
        )
        row = result.first()
    if row is None:
        raise EndpointNotFound(endpoint_id)
    return Endpoint(row.id, row.url, row.disabled_at, row.disabled_reason, row.created_at)


async def backlog(engine: AsyncEngine) -> tuple[dict[str, int], dict[str, int]]:
    """Per endpoint: deliveries waiting for a retry, and dead letters stored."""
    async with engine.connect() as conn:
        retrying = await conn.execute(
            sa.select(deliveries.c.endpoint_id, sa.func.count())
            .where(deliveries.c.status == PENDING, deliveries.c.attempts > 0)
            .group_by(deliveries.c.endpoint_id)
        )
        pending = {str(e): int(n) for e, n in retrying}
        failed = await conn.execute(
            sa.select(deliveries.c.endpoint_id, sa.func.count())
            .where(deliveries.c.status == FAILED).group_by(deliveries.c.endpoint_id)
        )
        dead = {str(e): int(n) for e, n in failed}
    return pending, dead


async def purge_finished(engine: AsyncEngine, before: datetime, batch: int = 5000) -> int:
    """Delete delivered and dead-lettered deliveries created before `before`, a batch at a time
    so no long lock is held. Returns how many went."""
    old = (
        sa.select(deliveries.c.id)
        .where(deliveries.c.status.in_((DELIVERED, FAILED, CANCELLED)),
               deliveries.c.created_at < before)
        .limit(batch).scalar_subquery()
    )
    async with engine.begin() as conn:
        result = await conn.execute(deliveries.delete().where(deliveries.c.id.in_(old)))
    return int(result.rowcount or 0)
