"""An anonymous visitor who identifies, end to end in both modes, seen only through HTTP.

A visitor arrives from a paid search ad (`utm_medium=cpc` in the page's URL), views pages and
shows intent while only their anonymousId is known, then identifies; one more event is still
sent with the anonymousId alone. The read API must answer for either id with the one person,
the journeys must hold what the engine computes for all of it as one contact, and the webhook
receiver must hear of each stage change the merge caused once, and of the merge itself.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.ingest.touchpoint import Arrival, to_record
from shared.journey import ContactState, Touchpoint, in_event_order, load_journeys, replay
from shared.settings import DatabaseSettings, KafkaSettings
from shared.wire import decode_touchpoint, partition_for_key
from tests.actions_harness import SECRET_ENV, Receiver, eventually, write_journey
from tests.deployments import Deployment, deploy, running
from tests.messages import iso

PARTITIONS = 3  # in both modes (tests/conftest.py gives the distributed topics three)
Call = tuple[str, dict[str, Any]]  # a Segment call's type (its endpoint) and the call
AD = "https://polku.example/pricing?utm_source=google&utm_medium=cpc"


@pytest.fixture
def journeys(tmp_path: Path, receiver: Receiver) -> Path:
    """`deals` (a demo request hands the contact to sales) and `visits`, whose stages follow
    the visitor's pages and intent, and whose actions subscribe to merges."""
    directory = write_journey(tmp_path / "journeys", receiver)
    (directory / "visits.yaml").write_text(f"""
id: visits
version: 1
labels: {{fi: Käynnit, en: Visits}}
stages:
  - {{id: visitor, labels: {{fi: Vierailija, en: Visitor}}}}
  - {{id: engaged, labels: {{fi: Kiinnostunut, en: Engaged}}}}
  - {{id: evaluating, labels: {{fi: Arvioi, en: Evaluating}}}}
  - {{id: ready, labels: {{fi: Valmis, en: Ready}}}}
rules:
  - id: three-pages
    from: [visitor]
    to: engaged
    when: {{count: {{matching: {{type: page}}, at_least: 3, within: 7d}}}}
  - {{id: pricing, from: [engaged], to: evaluating, when: {{event: Pricing Viewed}}}}
  - {{id: quote, from: [evaluating], to: ready, when: {{event: Quote Requested}}}}
actions:
  - on: {{stage_entered: evaluating}}
    webhooks:
      - {{url: "{receiver.url('/hooks/evaluating')}", secret_env: {SECRET_ENV}}}
  - on: {{contact_merged: true}}
    webhooks:
      - {{url: "{receiver.url('/hooks/merged')}", secret_env: {SECRET_ENV}}}
""")
    return directory


@pytest.fixture
async def polku(mode: str, journeys: Path, tmp_path: Path, topic_names: KafkaSettings,
                database_for: DatabaseSettings | None) -> AsyncIterator[Deployment]:
    deployment = deploy(mode, journeys, tmp_path, topic_names, database_for,
                        POLKU_DEV_PARTITIONS=str(PARTITIONS))
    async with running(deployment):
        yield deployment


def two_ids() -> tuple[str, str]:
    """A userId and an anonymousId on different partitions: the merge crosses between them."""
    while True:
        tag = uuid.uuid4().hex[:8]
        user, anon = f"maija-{tag}", f"anon-{tag}"
        if partition_for_key(user.encode(), PARTITIONS) != \
                partition_for_key(anon.encode(), PARTITIONS):
            return user, anon


def as_touchpoint(kind: str, call: dict[str, Any]) -> Touchpoint:
    """A call as the stager gets it: turned into a touchpoint by ingest's own code."""
    record = to_record(call, Arrival.now("e2e", 64 * 1024), kind=kind)
    return decode_touchpoint(json.loads(record.value))


def stages(journeys: Path, touchpoints: list[Touchpoint]) -> dict[str, ContactState | None]:
    """The engine's run of `touchpoints`, in this order, in every journey."""
    return {j.id: replay(j, touchpoints).state for j in load_journeys(journeys)}


def stage_of(state: ContactState | None) -> str | None:
    return state.stage if state is not None else None


def by_journey(person: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {j["journey"]: j for j in person["journeys"]}


async def test_an_anonymous_visitor_who_identifies_is_one_contact_everywhere(
    polku: Deployment, receiver: Receiver, journeys: Path
) -> None:
    user, anon = two_ids()
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

    def at(minutes: int) -> str:
        return iso(t0 + timedelta(minutes=minutes))

    def ids() -> dict[str, str]:
        return {"messageId": str(uuid.uuid4())}

    browsing: list[Call] = [
        ("page", {"anonymousId": anon, "name": "Pricing", "timestamp": at(0), **ids(),
                  "context": {"page": {"url": AD, "referrer": "https://www.google.com/"}}}),
        ("page", {"anonymousId": anon, "name": "Features", "timestamp": at(2), **ids(),
                  "context": {"page": {"url": "https://polku.example/features"}}}),
        ("page", {"anonymousId": anon, "name": "Customers", "timestamp": at(4), **ids(),
                  "context": {"page": {"url": "https://polku.example/customers"}}}),
        ("track", {"anonymousId": anon, "event": "Pricing Viewed", "timestamp": at(6), **ids(),
                   "properties": {"plan": "pro"}}),
        ("track", {"anonymousId": anon, "event": "Demo Requested", "timestamp": at(8), **ids()}),
    ]
    identify: Call = ("identify", {
        "userId": user, "anonymousId": anon, "timestamp": at(10), **ids(),
        "traits": {"email": f"{user}@example.fi", "name": "Maija"}})
    late: Call = ("track", {"anonymousId": anon, "event": "Quote Requested",
                            "timestamp": at(20), **ids()})
    # The engine's answers: the user alone (before the merge), the user with the anonymous
    # history in event-time order (the merge), then the late event as it arrives.
    alone = stages(journeys, [as_touchpoint(*identify)])
    history = in_event_order([as_touchpoint(*call) for call in [*browsing, identify]], user)
    merged_in = stages(journeys, history)
    want = stages(journeys, [*history, replace(as_touchpoint(*late), contact=user)])

    async with polku.client() as http:
        for kind, call in browsing:
            answer = await http.post(f"/v1/{kind}", json=call)
            assert answer.status_code == 200, answer.text

        async def browsed() -> bool:
            found = await polku.contact(anon)
            return found is not None and {
                j: (s["stage"] or {}).get("id") for j, s in by_journey(found).items()
            } == {"deals": "selection", "visits": "evaluating"}

        # The anonymous history is in before the visitor identifies (as on a real site).
        await eventually(browsed, timeout_s=30, what="the anonymous history")
        answer = await http.post("/v1/identify", json=identify[1])
        assert answer.status_code == 200, answer.text

        async def merged() -> bool:
            found = await polku.contact(anon)
            return found is not None and found["contact"] == user

        await eventually(merged, timeout_s=30, what="the merge")
        answer = await http.post("/v1/batch", json={"batch": [{"type": "track", **late[1]}]})
        assert answer.status_code == 200, answer.text

    async def late_one_applied() -> bool:
        found = await polku.contact(user)
        assert found is not None
        visits = by_journey(found)["visits"]
        return any(t["cause"] == late[1]["messageId"] for t in visits["history"])

    await eventually(late_one_applied, timeout_s=30, what="the event sent after identifying")

    # Either id answers with the one person: the userId is the contact, both ids are theirs.
    person = await polku.contact(user)
    assert person is not None
    assert await polku.contact(anon) == person
    assert person["contact"] == user
    assert person["ids"] == [user, anon]
    assert [(link["alias"], link["kind"], link["cause"]) for link in person["links"]] == \
        [(anon, "identify", identify[1]["messageId"])]
    assert person["conflicts"] == []
    journeys_now = by_journey(person)
    assert set(journeys_now) == set(want)
    for journey_id, state in want.items():
        assert state is not None
        seen = journeys_now[journey_id]
        assert seen["contact"] == user
        assert seen["stage"]["id"] == state.stage, journey_id
        # First touch: the paid search ad, when the first page was viewed.
        assert seen["first_touch"]["channel"] == "paid_search"
        assert datetime.fromisoformat(seen["first_touch"]["at"]) == t0
        assert state.first_touch is not None and state.first_touch.at == t0
        assert seen["traits"]["email"] == f"{user}@example.fi"
    # The history keeps the anonymous id's own moves; the merge made one move of the user's.
    assert {(t["contact"], t["from"], t["to"], t["caused_by"]["kind"])
            for t in journeys_now["deals"]["history"]} == {
        (anon, None, "learning", "event"), (anon, "learning", "selection", "event"),
        (user, None, "learning", "event"), (user, "learning", "selection", "merge")}
    assert len(journeys_now["deals"]["history"]) == 4
    assert journeys_now["visits"]["stage"]["id"] == "ready"  # the late event moved the user
    late_move = [t for t in journeys_now["visits"]["history"]
                 if t["cause"] == late[1]["messageId"]]
    assert [(t["contact"], t["from"], t["to"]) for t in late_move] == \
        [(user, "evaluating", "ready")]

    # The webhooks: each stage change the merge caused, once; the merge, once.
    caused = {j: (stage_of(alone[j]), stage_of(merged_in[j])) for j in alone}
    assert caused == {"deals": ("learning", "selection"), "visits": ("visitor", "evaluating")}

    def merge_hooks(path: str) -> list[dict[str, Any]]:
        return [body for body in (r.verified() for r in receiver.requests(path))
                if body["contact"] == user and body.get("cause", {}).get("kind") == "merge"]

    def all_arrived() -> bool:
        return (len(merge_hooks("/hooks/sales")) >= 1
                and len(merge_hooks("/hooks/evaluating")) >= 1
                and len(receiver.requests("/hooks/merged")) >= 1)

    await eventually(all_arrived, timeout_s=30, what="the webhooks the merge caused")
    await asyncio.sleep(1.0)  # anything doubled would have arrived by now
    sales, evaluating = merge_hooks("/hooks/sales"), merge_hooks("/hooks/evaluating")
    assert [(b["journey"]["id"], b["from"]["id"], b["to"]["id"], b["cause"]) for b in sales] == \
        [("deals", "learning", "selection", {"kind": "merge", "merged": anon})]
    assert [(b["from"]["id"], b["to"]["id"]) for b in evaluating] == [("visitor", "evaluating")]
    # The CRM endpoint (fields without the cause) heard of the user's move to selection once.
    crm = [r.verified() for r in receiver.requests("/hooks/crm")]
    assert [b["transition_id"] for b in crm if b["contact"] == user] == \
        [sales[0]["transition_id"]]
    merges = [r.verified() for r in receiver.requests("/hooks/merged")]
    assert len(merges) == 1
    assert {k: merges[0][k] for k in ("type", "contact", "merged", "cause")} == {
        "type": "contact.merged", "contact": user, "merged": anon,
        "cause": {"kind": "identify", "message_id": identify[1]["messageId"]}}
    assert merges[0]["traits"]["email"] == f"{user}@example.fi"
