"""The delivery store on real PostgreSQL: idempotent creation, claims that several workers can
share, leases that outlive a crashed worker, results written only by their claim."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.actions import store
from services.actions.deliveries import PlannedDelivery, endpoint_id
from services.actions.store import AttemptResult
from shared.clock import ManualClock
from shared.settings import DatabaseSettings, KafkaSettings
from tests.actions_harness import (
    SECRET,
    SECRET_ENV,
    Receiver,
    fast_settings,
    running_actions,
    write_journey,
)

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def planned(url: str, n: int) -> list[PlannedDelivery]:
    return [
        PlannedDelivery(
            id=f"msg_{uuid.uuid4().hex}", transition_id=str(uuid.uuid4()),
            endpoint_id=endpoint_id(url), url=url, journey_id="deals", contact=f"c-{i}",
            payload="{}", secret_env=SECRET_ENV, secret_file=None,
        )
        for i in range(n)
    ]


async def claim(engine: AsyncEngine, now: datetime = NOW, slots: int = 10, total: int = 100,
                exclude: tuple[str, ...] = ()) -> tuple[str, list[store.Delivery]]:
    return await store.claim_due(engine, now=now, lease_until=now + timedelta(seconds=60),
                                 slots={}, default_slots=slots, total=total, exclude=exclude)


async def test_creating_a_delivery_twice_creates_it_once(engine: AsyncEngine) -> None:
    batch = planned("https://a.example/hook", 3)
    assert len(await store.create_deliveries(engine, batch, NOW)) == 3
    assert await store.create_deliveries(engine, batch, NOW) == []
    assert len(await store.list_deliveries(engine, status="pending")) == 3


async def test_the_first_attempt_waits_for_the_schedules_first_delay(engine: AsyncEngine) -> None:
    await store.create_deliveries(engine, planned("https://late.example/hook", 2), NOW,
                                  first_delay_s=30)
    _, early = await claim(engine, now=NOW + timedelta(seconds=29))
    _, due = await claim(engine, now=NOW + timedelta(seconds=30))
    assert [d.url for d in early] == []
    assert [d.url for d in due] == ["https://late.example/hook"] * 2


async def test_concurrent_claims_never_share_a_delivery(engine: AsyncEngine) -> None:
    for i in range(5):
        await store.create_deliveries(engine, planned(f"https://{i}.example/hook", 40), NOW)
    ids: list[str] = []
    for _ in range(20):  # rounds of eight workers claiming at once
        claims = await asyncio.gather(*(claim(engine, slots=40, total=30) for _ in range(8)))
        ids += [d.id for _, found in claims for d in found]
    assert len(ids) == len(set(ids)) == 200  # all claimed, none twice


async def test_a_claim_takes_at_most_the_free_slots_of_each_endpoint(engine: AsyncEngine) -> None:
    busy, quiet = "https://busy.example/hook", "https://quiet.example/hook"
    await store.create_deliveries(engine, planned(busy, 10) + planned(quiet, 10), NOW)
    _, found = await store.claim_due(
        engine, now=NOW, lease_until=NOW + timedelta(seconds=60),
        slots={endpoint_id(busy): 1}, default_slots=4, total=100,
    )
    per_endpoint = {e: sum(1 for d in found if d.endpoint_id == e) for e in
                    (endpoint_id(busy), endpoint_id(quiet))}
    assert per_endpoint == {endpoint_id(busy): 1, endpoint_id(quiet): 4}


async def test_a_crashed_workers_lease_runs_out_and_its_late_result_is_ignored(
    engine: AsyncEngine,
) -> None:
    await store.create_deliveries(engine, planned("https://a.example/hook", 1), NOW)
    first_token, (delivery,) = await claim(engine)
    _, nothing = await claim(engine, now=NOW + timedelta(seconds=59))
    assert nothing == []  # leased
    second_token, (again,) = await claim(engine, now=NOW + timedelta(seconds=61))
    assert again.id == delivery.id
    late = AttemptResult(delivery.id, first_token, delivery.endpoint_id, store.FAILED, NOW,
                         http_status=500, error="late")
    on_time = AttemptResult(delivery.id, second_token, delivery.endpoint_id, store.DELIVERED,
                            NOW + timedelta(seconds=62), http_status=200)
    await store.record_results(engine, [late], [])
    await store.record_results(engine, [on_time], [])
    row = await store.get_delivery(engine, delivery.id)
    assert (row.status, row.attempts, row.last_status) == ("delivered", 1, 200)


async def test_deliveries_created_under_a_claim_are_leased_up_to_each_endpoints_room(
    engine: AsyncEngine,
) -> None:
    busy, quiet = "https://busy.example/hook", "https://quiet.example/hook"
    lease = store.Claim("token-1", NOW + timedelta(seconds=60),
                        {endpoint_id(busy): 2, endpoint_id(quiet): 0})
    batch = planned(busy, 5) + planned(quiet, 3)
    created = await store.create_and_claim(engine, batch, NOW, claim=lease)
    assert len(created.deliveries) == 8
    assert [d.id for d in created.claimed] == [p.id for p in batch[:2]]
    assert all(d.claim_token == "token-1" and d.url == busy for d in created.claimed)
    # The leased ones are nobody else's until the lease runs out; the rest are claimable.
    _, others = await claim(engine, now=NOW + timedelta(seconds=59))
    assert sorted(d.id for d in others) == sorted(p.id for p in batch[2:])
    _, expired = await claim(engine, now=NOW + timedelta(seconds=61))
    assert sorted(d.id for d in expired) == sorted(p.id for p in batch[:2])


async def test_a_result_under_the_creations_claim_is_written(engine: AsyncEngine) -> None:
    lease = store.Claim("token-2", NOW + timedelta(seconds=60),
                        {endpoint_id("https://a.example/hook"): 1})
    created = await store.create_and_claim(engine, planned("https://a.example/hook", 1), NOW,
                                           claim=lease)
    delivery, = created.claimed
    await store.record_results(engine, [AttemptResult(
        delivery.id, "token-2", delivery.endpoint_id, store.DELIVERED, NOW, http_status=204,
    )], [])
    row = await store.get_delivery(engine, delivery.id)
    assert (row.status, row.attempts, row.claim_token) == ("delivered", 1, None)


async def test_what_exists_already_or_waits_for_its_first_delay_is_not_leased(
    engine: AsyncEngine,
) -> None:
    url = "https://a.example/hook"
    lease = store.Claim("token-3", NOW + timedelta(seconds=60), {endpoint_id(url): 10})
    earlier = planned(url, 2)
    await store.create_deliveries(engine, earlier, NOW)
    again = await store.create_and_claim(engine, earlier + earlier, NOW, claim=lease)
    assert again.deliveries == [] and again.claimed == []  # a redelivered transition
    later = await store.create_and_claim(engine, planned(url, 2), NOW, first_delay_s=5,
                                         claim=lease)
    assert len(later.deliveries) == 2 and later.claimed == []


async def test_finished_deliveries_are_purged_after_the_retention(engine: AsyncEngine) -> None:
    old, recent = planned("https://a.example/hook", 2), planned("https://a.example/hook", 1)
    await store.create_deliveries(engine, old, NOW - timedelta(days=40))
    await store.create_deliveries(engine, recent, NOW)
    token, claimed = await claim(engine)
    await store.record_results(engine, [
        AttemptResult(d.id, token, d.endpoint_id, store.DELIVERED, NOW) for d in claimed
    ], [])
    assert await store.purge_finished(engine, NOW - timedelta(days=30)) == 2
    assert [d.id for d in await store.list_deliveries(engine)] == [recent[0].id]


async def test_the_api_can_require_a_bearer_token(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with Receiver() as receiver:
        async with running_actions(topic_names, database_settings,
                                   write_journey(tmp_path / "j", receiver), ManualClock(),
                                   fast_settings(admin_token="s3cret")) as svc:
            denied = await svc.api.get("/v1/deliveries")
            allowed = await svc.api.get("/v1/deliveries",
                                        headers={"Authorization": "Bearer s3cret"})
            naive = await svc.api.get("/v1/deliveries", params={"since": "2026-11-23T08:00"},
                                      headers={"Authorization": "Bearer s3cret"})
            health = await svc.api.get("/healthz")
    assert denied.status_code == 401 and allowed.status_code == 200
    assert naive.status_code == 422
    assert health.status_code == 200  # ops endpoints stay open
