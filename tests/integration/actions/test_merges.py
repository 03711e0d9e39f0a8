"""Delivering contact.merged records from the transitions topic as signed webhooks (real Kafka,
PostgreSQL and a local receiver): once per URL over all subscribing journeys, however often the
stager publishes the same merge."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clock import ManualClock
from shared.settings import DatabaseSettings, KafkaSettings
from shared.wire import ContactMerged, encode_merged
from tests.actions_harness import (
    SECRET_ENV,
    Receiver,
    delivery_rows,
    eventually,
    produce_transitions,
    read_dead_letters,
    running_actions,
    transition,
    write_journey,
)


def merged(contact: str, anonymous: str) -> dict[str, Any]:
    """A contact.merged record as the stager publishes it."""
    merge = ContactMerged(contact, anonymous, "identify", str(uuid.uuid4()), datetime.now(UTC))
    return encode_merged(merge, {"email": f"{contact}@example.com", "plan": "pro"})


def merge_journeys(directory: Path, receiver: Receiver) -> Path:
    """`deals` (tests.actions_harness) and a second journey both send merges to /hooks/merged;
    only `onboarding` sends them to /hooks/ids as well, narrowed."""
    write_journey(directory, receiver, extra_actions=f"""
  - on: {{contact_merged: true}}
    webhooks:
      - {{url: "{receiver.url('/hooks/merged')}", secret_env: {SECRET_ENV}}}
""")
    (directory / "onboarding.yaml").write_text(f"""
id: onboarding
version: 1
labels: {{fi: Käyttöönotto, en: Onboarding}}
stages:
  - {{id: signed-up, labels: {{fi: Rekisteröitynyt, en: Signed up}}}}
rules:
  - {{id: signed, to: signed-up, when: {{event: Signed Up}}}}
actions:
  - on: {{contact_merged: true}}
    webhooks:
      - {{url: "{receiver.url('/hooks/merged')}", secret_env: {SECRET_ENV}}}
      - {{url: "{receiver.url('/hooks/ids')}", secret_env: {SECRET_ENV},
          fields: [at, traits.email]}}
""")
    return directory


async def test_a_merge_reaches_each_subscribed_url_once_signed_even_if_redelivered(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    receiver: Receiver, tmp_path: Path,
) -> None:
    record = merged("merge-1", "anon-merge-1")
    # A transition of the same contact after each copy: once it is delivered, the worker has
    # read the merge before it (one contact, one partition, in order).
    first_marker = transition("merge-1", to="prioritization", from_="learning",
                              rule_id="engaged")
    second_marker = transition("merge-1", to="prioritization", from_="learning",
                               rule_id="engaged")
    journeys = merge_journeys(tmp_path / "journeys", receiver)
    async with running_actions(topic_names, database_settings, journeys, ManualClock()):
        await produce_transitions(topic_names, [record, record, first_marker])
        await eventually(lambda: len(receiver.requests("/hooks/nurture")) == 1
                         and len(receiver.requests("/hooks/merged")) == 1
                         and len(receiver.requests("/hooks/ids")) == 1, what="deliveries")
        # Again, after the first copy was delivered (the stager replaying its outbox).
        await produce_transitions(topic_names, [record, second_marker])
        await eventually(lambda: len(receiver.requests("/hooks/nurture")) == 2,
                         what="the second marker")
        await asyncio.sleep(0.5)  # time for a duplicate to show up, if there were one

    assert Counter(r.path for r in receiver.requests()) == {
        "/hooks/merged": 1, "/hooks/ids": 1, "/hooks/nurture": 2}
    whole, = receiver.requests("/hooks/merged")
    assert whole.verified() == record  # signed; the record as published
    narrow, = receiver.requests("/hooks/ids")
    assert narrow.verified() == {
        "v": 1, "type": "contact.merged", "merge_id": record["merge_id"],
        "contact": "merge-1", "merged": "anon-merge-1", "at": record["at"],
        "traits": {"email": "merge-1@example.com"},
    }
    rows = await delivery_rows(engine, [record["merge_id"]])
    assert sorted((r.id, r.journey_id, r.contact, r.status) for r in rows) == sorted([
        (whole.webhook_id, "deals", "merge-1", "delivered"),
        (narrow.webhook_id, "onboarding", "merge-1", "delivered"),
    ])


async def test_a_merge_of_another_type_or_with_a_forged_id_is_dead_lettered_and_the_next_sent(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    receiver: Receiver, tmp_path: Path,
) -> None:
    unknown = {**merged("merge-2", "anon-2"), "type": "contact.split"}
    forged = {**merged("merge-3", "anon-3"), "merge_id": str(uuid.uuid4())}
    good = merged("merge-4", "anon-4")
    async with running_actions(topic_names, database_settings,
                               merge_journeys(tmp_path / "journeys", receiver), ManualClock()):
        await produce_transitions(topic_names, [unknown, forged, good])
        await eventually(lambda: len(receiver.requests("/hooks/merged")) == 1, what="the merge")
    assert receiver.requests("/hooks/merged")[0].verified() == good
    letters = await read_dead_letters(topic_names, expect=2)
    assert sorted(json.loads(r.value)["contact"] for r in letters) == ["merge-2", "merge-3"]
    errors = sorted(dict(r.headers)["polku.error"].decode() for r in letters)
    assert errors == ["merge_id: must be the merge id of contact and merged",
                      "type: must be contact.stage_changed or contact.merged"]
    assert {dict(r.headers)["polku.error.reason"] for r in letters} == {b"invalid_field"}
