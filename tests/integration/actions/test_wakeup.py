"""New deliveries are attempted as their transitions are consumed, not at the dispatcher's next
poll (real Kafka, PostgreSQL and HTTP receiver). The poll here is a minute long, so anything
that arrives within seconds was woken, not polled; the bounds are generous on purpose."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.actions import dispatcher as dispatcher_module
from services.actions import store
from services.actions.deliveries import PlannedDelivery, endpoint_id
from shared.clock import SystemClock
from shared.db.tables import webhook_deliveries
from shared.settings import DatabaseSettings, KafkaSettings
from tests.actions_harness import (
    SECRET,
    SECRET_ENV,
    Receiver,
    Reply,
    eventually,
    fast_settings,
    produce_transitions,
    running_actions,
    transition,
    write_journey,
)

LONG_POLL_S = 60.0
# Far below the poll, far above what the path takes on a loaded machine.
WOKEN_WITHIN_S = 15.0


async def _after_first_poll() -> None:
    """The dispatcher looks once as it starts; what comes after that waits for a wake-up."""
    await asyncio.sleep(1.0)


async def test_a_new_delivery_is_attempted_as_its_transition_is_consumed_not_at_the_next_poll(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    receiver: Receiver, tmp_path: Path,
) -> None:
    settings = fast_settings(dispatch_poll_s=LONG_POLL_S)
    handoffs = [transition(f"woken-{i}") for i in range(3)]
    async with running_actions(topic_names, database_settings,
                               write_journey(tmp_path / "j", receiver), SystemClock(), settings):
        await _after_first_poll()
        for i, handoff in enumerate(handoffs):
            started = time.monotonic()
            await produce_transitions(topic_names, [handoff])
            await eventually(lambda n=i: len(receiver.requests()) >= 2 * (n + 1),
                             timeout_s=WOKEN_WITHIN_S, what="both deliveries, long before a poll")
            assert time.monotonic() - started < WOKEN_WITHIN_S

    async with engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(webhook_deliveries.c.status, webhook_deliveries.c.attempts,
                      webhook_deliveries.c.claim_token)
            .where(webhook_deliveries.c.transition_id.in_([h["transition_id"]
                                                           for h in handoffs]))
        )).all()
    # Each attempted once and written down, its claim cleared.
    assert sorted(rows) == [("delivered", 1, None)] * 6


async def test_new_deliveries_are_handed_to_the_dispatcher_without_a_claim_round_trip(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Claims from the database find nothing here: what is delivered was leased to the
    # dispatcher as it was created and handed over in memory.
    claims = 0

    async def claim_nothing(*args: Any, **kwargs: Any) -> tuple[str, list[store.Delivery]]:
        nonlocal claims
        claims += 1
        return str(uuid.uuid4()), []

    monkeypatch.setattr(dispatcher_module, "claim_due", claim_nothing)
    settings = fast_settings(dispatch_poll_s=LONG_POLL_S)
    handoff = transition("handed-over")
    async with running_actions(topic_names, database_settings,
                               write_journey(tmp_path / "j", receiver), SystemClock(), settings):
        await _after_first_poll()
        await produce_transitions(topic_names, [handoff])
        await eventually(lambda: len(receiver.requests()) >= 2, timeout_s=WOKEN_WITHIN_S,
                         what="both deliveries without a claim")

        async def written() -> bool:
            async with engine.connect() as conn:
                rows = (await conn.execute(
                    sa.select(webhook_deliveries.c.status)
                    .where(webhook_deliveries.c.transition_id == handoff["transition_id"])
                )).scalars().all()
            return sorted(rows) == ["delivered", "delivered"]

        await eventually(written, what="the results written under the creation's claim")
    assert claims <= 1  # the look at start only


async def test_deliveries_beyond_the_room_handed_over_are_claimed_as_attempts_finish(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, receiver: Receiver,
    tmp_path: Path,
) -> None:
    # Two at a time per endpoint: each batch of new deliveries fills the room at once, the rest
    # waits in the database and is claimed as attempts finish, still without the poll.
    for path in ("/hooks/sales", "/hooks/crm"):
        receiver.on(path, lambda n: Reply(204, delay_s=0.02))
    settings = fast_settings(dispatch_poll_s=LONG_POLL_S, endpoint_concurrency=2)
    handoffs = [transition(f"backlog-{i}") for i in range(40)]
    async with running_actions(topic_names, database_settings,
                               write_journey(tmp_path / "j", receiver), SystemClock(), settings):
        await _after_first_poll()
        started = time.monotonic()
        await produce_transitions(topic_names, handoffs)
        await eventually(lambda: len(receiver.requests()) >= 80, timeout_s=2 * WOKEN_WITHIN_S,
                         what="all 80 deliveries, long before a poll")
        assert time.monotonic() - started < 2 * WOKEN_WITHIN_S
    ids = [r.webhook_id for r in receiver.requests()]
    assert len(set(ids)) == len(ids) == 80  # each once


async def test_a_delivery_another_worker_created_is_found_by_the_poll(
    database_settings: DatabaseSettings, topic_names: KafkaSettings, engine: AsyncEngine,
    receiver: Receiver, tmp_path: Path,
) -> None:
    # Nothing in this process knows of it: only the poll, the fallback, finds it.
    settings = fast_settings(dispatch_poll_s=1.0)
    url = receiver.url("/hooks/elsewhere")
    delivery = PlannedDelivery(
        id=f"msg_{uuid.uuid4().hex}", transition_id=str(uuid.uuid4()), endpoint_id=endpoint_id(url),
        url=url, journey_id="deals", contact="c-elsewhere", payload='{"v":1}',
        secret_env=SECRET_ENV, secret_file=None,
    )
    async with running_actions(topic_names, database_settings,
                               write_journey(tmp_path / "j", receiver), SystemClock(), settings):
        await _after_first_poll()
        await store.create_deliveries(engine, [delivery], datetime.now(UTC))
        await eventually(lambda: len(receiver.requests("/hooks/elsewhere")) == 1,
                         timeout_s=WOKEN_WITHIN_S, what="the poll to find the delivery")
    received, = receiver.requests("/hooks/elsewhere")
    assert received.webhook_id == delivery.id
    assert received.verified(SECRET) == {"v": 1}
