"""SIGKILL the actions worker mid-delivery, again and again: no delivery is lost; SIGTERM lets
running attempts finish."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.tables import webhook_deliveries
from shared.settings import DatabaseSettings, KafkaSettings
from tests.actions_harness import (
    SECRET,
    SECRET_ENV,
    Receiver,
    Reply,
    eventually,
    produce_transitions,
    transition,
    write_journey,
)
from tests.processes import ServiceProcess, service_env

pytestmark = pytest.mark.usefixtures("no_earlier_deliveries")


def actions_env(kafka: KafkaSettings, database: DatabaseSettings, journeys: Path) -> dict[str, str]:
    return service_env(
        kafka, database,
        POLKU_JOURNEYS_DIR=str(journeys),
        POLKU_ACTIONS_GROUP_ID=f"crash-actions-{uuid.uuid4().hex[:8]}",
        POLKU_ACTIONS_EGRESS_ALLOW="127.0.0.0/8",
        # A killed worker's claims are taken over once their lease runs out.
        POLKU_ACTIONS_LEASE_S="3",
        POLKU_ACTIONS_ATTEMPT_TIMEOUT_S="1",
        POLKU_ACTIONS_ENDPOINT_CONCURRENCY="4",
        POLKU_ACTIONS_DISPATCH_POLL_S="0.1",
        POLKU_ACTIONS_SESSION_TIMEOUT_MS="6000",
        POLKU_ACTIONS_HEARTBEAT_INTERVAL_MS="1000",
        **{SECRET_ENV: SECRET},
    )


async def statuses(engine: AsyncEngine, transition_ids: list[str]) -> Counter[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(webhook_deliveries.c.status, sa.func.count())
            .where(webhook_deliveries.c.transition_id.in_(transition_ids))
            .group_by(webhook_deliveries.c.status)
        )
        return Counter({str(status): int(n) for status, n in rows})


async def start(env: dict[str, str]) -> ServiceProcess:
    worker = ServiceProcess("actions", env).start()
    await asyncio.to_thread(worker.wait_status, "/readyz", 200, 60)
    return worker


async def test_repeated_sigkill_mid_delivery_loses_no_delivery(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    handoffs = [transition(f"kill-{i}") for i in range(150)]
    ids = [h["transition_id"] for h in handoffs]
    with Receiver() as receiver:
        # Slow enough answers that every kill lands while attempts are in flight.
        for path in ("/hooks/sales", "/hooks/crm"):
            receiver.on(path, lambda n: Reply(200, delay_s=0.2))
        env = actions_env(topic_names, database_settings, write_journey(tmp_path, receiver))
        await produce_transitions(topic_names, handoffs)
        progress = []
        for _ in range(3):
            worker = await start(env)
            before = len(receiver.requests())
            await eventually(lambda b=before: len(receiver.requests()) >= b + 20, timeout_s=30)
            worker.kill()  # SIGKILL: no shutdown hook runs, attempts die mid-request
            progress.append(len(receiver.requests()))
        survivor = await start(env)
        try:
            async def all_delivered() -> bool:
                return (await statuses(engine, ids)) == Counter(delivered=300)

            await eventually(all_delivered, timeout_s=120, what="all 300 deliveries delivered")
        finally:
            survivor.kill()
        received = receiver.requests()

    assert progress[-1] < 300, progress  # the kills really landed mid-stream
    by_id = Counter(r.webhook_id for r in received)
    async with engine.connect() as conn:
        expected = set((await conn.scalars(
            sa.select(webhook_deliveries.c.id)
            .where(webhook_deliveries.c.transition_id.in_(ids))
        )).all())
    assert len(expected) == 300  # exactly one logical delivery per transition and endpoint
    assert set(by_id) == expected  # every one arrived; a retry after a kill reuses its id
    bodies = {r.webhook_id: r.verified()["transition_id"] for r in received}
    assert set(bodies.values()) == set(ids)


async def test_sigterm_finishes_running_attempts_and_leaves_no_claim_behind(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    handoffs = [transition(f"term-{i}") for i in range(100)]
    ids = [h["transition_id"] for h in handoffs]
    with Receiver() as receiver:
        for path in ("/hooks/sales", "/hooks/crm"):
            receiver.on(path, lambda n: Reply(200, delay_s=0.3))
        env = actions_env(topic_names, database_settings, write_journey(tmp_path, receiver))
        await produce_transitions(topic_names, handoffs)
        worker = await start(env)
        await eventually(lambda: len(receiver.requests()) >= 10, timeout_s=30)
        code = await asyncio.to_thread(worker.terminate, 30)
        sent = len(receiver.requests())
        await asyncio.sleep(0.5)
        assert len(receiver.requests()) == sent  # nothing new after the process exited

    # uvicorn re-raises SIGTERM once the lifespan has closed everything.
    assert code in (0, -signal.SIGTERM), worker.log_tail()
    async with engine.connect() as conn:
        claimed = await conn.scalar(
            sa.select(sa.func.count()).select_from(webhook_deliveries)
            .where(webhook_deliveries.c.transition_id.in_(ids),
                   webhook_deliveries.c.claim_token.is_not(None))
        )
    counts = await statuses(engine, ids)
    assert claimed == 0  # every running attempt finished and was written down
    assert counts["delivered"] == sent  # each request that reached the receiver is recorded
    assert counts["delivered"] + counts["pending"] == 200


async def test_two_workers_in_one_group_one_killed_again_and_again_deliver_each_once(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    handoffs = [transition(f"pair-{i}") for i in range(300)]
    ids = [h["transition_id"] for h in handoffs]
    with Receiver() as receiver:
        for path in ("/hooks/sales", "/hooks/crm"):
            receiver.on(path, lambda n: Reply(200, delay_s=0.05))
        env = actions_env(topic_names, database_settings, write_journey(tmp_path, receiver))
        steady = await start(env)
        try:
            # Transitions keep arriving while the second member joins, dies and rejoins, so
            # the group rebalances under load again and again.
            for round_ in range(4):
                flaky = ServiceProcess("actions", env).start()
                await produce_transitions(topic_names, handoffs[round_ * 75:(round_ + 1) * 75])
                await asyncio.sleep(3.0)
                flaky.kill()

            async def all_delivered() -> bool:
                return (await statuses(engine, ids)) == Counter(delivered=600)

            await eventually(all_delivered, timeout_s=120, what="all 600 deliveries delivered")
            assert steady.process is not None and steady.process.poll() is None, \
                steady.log_tail()
        finally:
            steady.kill()
        received = receiver.requests()

    async with engine.connect() as conn:
        expected = set((await conn.scalars(
            sa.select(webhook_deliveries.c.id)
            .where(webhook_deliveries.c.transition_id.in_(ids))
        )).all())
    assert len(expected) == 600  # exactly one logical delivery per transition and endpoint
    assert {r.webhook_id for r in received} == expected
