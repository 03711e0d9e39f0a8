"""Events sent with the Segment SDK through a real ingest reach the stager and move the contact.

The whole path a website's events take: SDK -> `polku ingest` (HTTP) -> Kafka -> stager ->
PostgreSQL, with the stager deciding on the skew-corrected event time ingest computed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import segment.analytics as segment
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.sources import create_source
from shared.clock import ManualClock
from shared.db.tables import contact_states, transitions
from shared.settings import DatabaseSettings, KafkaSettings
from tests.processes import ServiceProcess, service_env
from tests.stager_harness import JOURNEYS, running_stager, wait_consumed

READ_TOKEN = "read-" + uuid.uuid4().hex


@pytest.fixture
def ingest(topic_names: KafkaSettings, database_settings: DatabaseSettings
           ) -> Iterator[ServiceProcess]:
    env = service_env(topic_names, database_settings, POLKU_JOURNEYS_DIR=str(JOURNEYS),
                      POLKU_INGEST_READ_TOKEN=READ_TOKEN,
                      POLKU_INGEST_ADMIN_TOKEN="privacy-" + uuid.uuid4().hex)
    process = ServiceProcess("ingest", env).start()
    try:
        process.wait_status("/readyz", 200, timeout_s=60)
        yield process
    finally:
        process.kill()


async def test_sdk_events_move_a_contact_through_the_journey_in_event_time(
    ingest: ServiceProcess, topic_names: KafkaSettings, engine: AsyncEngine
) -> None:
    _, key = await create_source(engine, f"e2e-{uuid.uuid4().hex[:6]}")
    contact = f"e2e-dana-{uuid.uuid4().hex[:6]}"
    client = segment.Client(key, host=ingest.url, sync_mode=True)
    now = datetime.now(UTC)
    # Three page views yesterday and a purchase an hour ago, sent (late) just now.
    for hours in (26, 25, 24):
        await asyncio.to_thread(client.page, contact, name="Pricing",
                                timestamp=now - timedelta(hours=hours))
    await asyncio.to_thread(client.track, contact, "Order Completed",
                            timestamp=now - timedelta(hours=1))

    async with running_stager(topic_names, engine, ManualClock(now)) as run:
        await wait_consumed(engine, topic_names, run.group_id)

    async with engine.connect() as conn:
        path = (await conn.execute(
            sa.select(transitions.c.from_stage, transitions.c.to_stage, transitions.c.at)
            .where(transitions.c.contact == contact, transitions.c.journey_id == "trial")
            .order_by(transitions.c.seq)
        )).all()
        stage = (await conn.execute(
            sa.select(contact_states.c.stage)
            .where(contact_states.c.contact == contact, contact_states.c.journey_id == "trial")
        )).scalar_one()
    assert [(p.from_stage, p.to_stage) for p in path] == [
        (None, "aware"), ("aware", "engaged"), ("engaged", "customer")
    ]
    assert stage == "customer"
    # The purchase counts when it happened (an hour ago), not when it arrived.
    assert abs(path[-1].at - (now - timedelta(hours=1))) < timedelta(seconds=5)


async def test_read_api_shows_the_stage_history_and_journeys(
    ingest: ServiceProcess, topic_names: KafkaSettings, engine: AsyncEngine
) -> None:
    _, key = await create_source(engine, f"e2e-{uuid.uuid4().hex[:6]}")
    contact = f"e2e-eino-{uuid.uuid4().hex[:6]}"
    client = segment.Client(key, host=ingest.url, sync_mode=True)
    now = datetime.now(UTC)
    await asyncio.to_thread(client.page, contact, name="Pricing", timestamp=now,
                            context={"campaign": {"source": "google", "medium": "cpc"}})
    await asyncio.to_thread(client.track, contact, "Order Completed", timestamp=now)
    async with running_stager(topic_names, engine, ManualClock(now)) as run:
        await wait_consumed(engine, topic_names, run.group_id)

    auth = {"authorization": f"Bearer {READ_TOKEN}"}
    async with httpx.AsyncClient(base_url=ingest.url, timeout=10) as http:
        assert (await http.get(f"/v1/contacts/{contact}")).status_code == 401
        found = await http.get(f"/v1/contacts/{contact}", headers=auth)
        missing = await http.get("/v1/contacts/nobody-at-all", headers=auth)
        journeys = await http.get("/v1/journeys", headers=auth)

    assert found.status_code == 200, found.text
    [trial] = found.json()["journeys"]
    assert trial["journey"] == "trial"
    assert trial["stage"]["id"] == "customer"
    assert trial["stage"]["labels"]["en"]
    assert [(h["from"], h["to"]) for h in trial["history"]] == [
        (None, "aware"), ("aware", "customer")
    ]
    assert all(h["cause"] and h["transition_id"] for h in trial["history"])
    assert trial["first_touch"]["channel"] and trial["last_touch"]["channel"]
    assert missing.status_code == 404
    assert "contact_id" in missing.json()["detail"]
    assert [j["id"] for j in journeys.json()["journeys"]] == ["trial"]


async def test_the_first_touch_of_a_visit_tagged_only_in_its_url_is_the_campaigns_channel(
    ingest: ServiceProcess, topic_names: KafkaSettings, engine: AsyncEngine
) -> None:
    # The Python SDK, unlike analytics.js, does not copy the UTM tags into context.campaign.
    _, key = await create_source(engine, f"e2e-{uuid.uuid4().hex[:6]}")
    contact = f"e2e-utu-{uuid.uuid4().hex[:6]}"
    client = segment.Client(key, host=ingest.url, sync_mode=True)
    now = datetime.now(UTC)
    await asyncio.to_thread(
        client.page, contact, name="Pricing", timestamp=now - timedelta(minutes=5),
        context={"page": {"url": "https://x.fi/hinnat?utm_source=google&utm_medium=cpc"}})
    await asyncio.to_thread(client.track, contact, "Order Completed", timestamp=now)
    async with running_stager(topic_names, engine, ManualClock(now)) as run:
        await wait_consumed(engine, topic_names, run.group_id)

    async with httpx.AsyncClient(base_url=ingest.url, timeout=10) as http:
        found = await http.get(f"/v1/contacts/{contact}",
                               headers={"authorization": f"Bearer {READ_TOKEN}"})
    [trial] = found.json()["journeys"]
    assert trial["first_touch"]["channel"] == "paid_search"
    assert trial["last_touch"]["channel"] == "direct"
