"""Touchpoints in, signed webhooks out: the stager and the actions worker on real Kafka and
PostgreSQL, delivering to a real local receiver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clock import ManualClock
from shared.settings import DatabaseSettings, KafkaSettings
from tests.actions_harness import (
    SECRET,
    SECRET_ENV,
    Receiver,
    eventually,
    running_actions,
)
from tests.messages import produce, touchpoint
from tests.stager_harness import running_stager

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


pytestmark = pytest.mark.usefixtures("no_earlier_deliveries")


def trial_with_actions(directory: Path, receiver: Receiver) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "trial.yaml").write_text(f"""
id: trial
version: 1
labels: {{fi: Kokeilu, en: Trial}}
stages:
  - {{id: aware, labels: {{fi: Tietoisuus, en: Awareness}}}}
  - {{id: engaged, labels: {{fi: Kiinnostunut, en: Engaged}}}}
  - {{id: customer, labels: {{fi: Asiakas, en: Customer}}}}
rules:
  - id: engaged-after-3-pages
    from: [aware]
    to: engaged
    when: {{count: {{matching: {{type: page}}, at_least: 3, within: 7d}}}}
  - id: purchase
    to: customer
    when: {{event: Order Completed}}
actions:
  - on: {{rule: engaged-after-3-pages}}
    webhooks:
      - {{url: "{receiver.url('/hooks/marketing')}", secret_env: {SECRET_ENV},
         fields: [contact, to, traits.email, first_touch]}}
  - on: {{stage_entered: customer}}
    webhooks:
      - {{url: "{receiver.url('/hooks/onboarding')}", secret_env: {SECRET_ENV}}}
""")
    return directory


async def test_a_contacts_stage_changes_reach_the_endpoints_that_asked_for_them(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    contact = "pipeline-alice"
    events = [touchpoint(contact, T0 + timedelta(hours=i), type="page", name="Blog")
              for i in range(3)]
    events[0]["context"] = {"traits": {"email": "alice@example.com"}}
    events.append(touchpoint(contact, T0 + timedelta(days=1), event="Order Completed",
                             message_id="order-1"))
    producer = AIOKafkaProducer(bootstrap_servers=topic_names.bootstrap_servers, acks="all")
    await producer.start()
    try:
        with Receiver() as receiver:
            journeys = trial_with_actions(tmp_path / "journeys", receiver)
            clock = ManualClock(T0)
            async with running_stager(topic_names, engine, clock, journeys), \
                    running_actions(topic_names, database_settings, journeys, clock):
                await produce(producer, topic_names.touchpoints_topic, events)
                await eventually(lambda: len(receiver.requests()) == 2, timeout_s=30)
            received = {r.path: r for r in receiver.requests()}
    finally:
        await producer.stop()

    marketing = received["/hooks/marketing"].verified()
    assert marketing["contact"] == contact and marketing["type"] == "contact.stage_changed"
    assert marketing["traits"] == {"email": "alice@example.com"}
    assert marketing["first_touch"] == {"channel": "direct", "at": T0.isoformat()}
    assert "last_touch" not in marketing  # not among the fields it selects
    assert marketing["to"] == {"id": "engaged", "labels": {"fi": "Kiinnostunut",
                                                           "en": "Engaged"}}
    onboarding = received["/hooks/onboarding"].verified()
    assert onboarding["from"]["id"] == "engaged" and onboarding["to"]["id"] == "customer"
    assert onboarding["cause"] == {"kind": "event", "message_id": "order-1",
                                   "event": "Order Completed"}
    assert onboarding["journey"] == {"id": "trial", "version": 1}
    assert onboarding["rule_id"] == "purchase"
    assert onboarding["last_touch"] == {"channel": "direct",
                                        "at": (T0 + timedelta(days=1)).isoformat()}
