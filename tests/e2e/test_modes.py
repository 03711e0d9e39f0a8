"""The main end-to-end scenarios, run against both modes: distributed and embedded.

Each test sees Polku only through HTTP (the Segment API, the read API, the deliveries API) and
a real local webhook receiver, so the same assertions hold for three processes on Kafka and
PostgreSQL and for one `polku dev` process on a SQLite file.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.settings import DatabaseSettings, KafkaSettings
from tests.actions_harness import (
    Receiver,
    Reply,
    eventually,
    write_journey,
    write_quiet_journey,
)
from tests.deployments import Deployment, deploy, running


@pytest.fixture
def journeys(tmp_path: Path, receiver: Receiver) -> Path:
    directory = write_journey(tmp_path / "journeys", receiver)
    # A second journey with a timer: a trial that goes quiet for two seconds is at risk.
    write_quiet_journey(directory, receiver)
    return directory


@pytest.fixture
async def polku(mode: str, journeys: Path, tmp_path: Path, topic_names: KafkaSettings,
                database_for: DatabaseSettings | None) -> AsyncIterator[Deployment]:
    deployment = deploy(mode, journeys, tmp_path, topic_names, database_for,
                        POLKU_ACTIONS_RETRY_SCHEDULE_S="0,0.2,0.2")
    async with running(deployment):
        yield deployment


def demo_request(contact: str, message_id: str | None = None) -> dict[str, Any]:
    return {"type": "track", "event": "Demo Requested", "userId": contact,
            "messageId": message_id or str(uuid.uuid4()),
            "context": {"traits": {"email": f"{contact}@example.com"}}}


async def test_events_move_contacts_and_their_webhooks_arrive_signed(
    polku: Deployment, receiver: Receiver
) -> None:
    contacts = [f"modes-{uuid.uuid4().hex[:6]}-{i}" for i in range(20)]
    async with polku.client() as http:
        answer = await http.post("/v1/batch", json={"batch": [demo_request(c) for c in contacts]})
        assert answer.status_code == 200, answer.text

    async def all_in_selection() -> bool:
        return all([await polku.stage(c, "deals") == "selection" for c in contacts])

    await eventually(all_in_selection, timeout_s=30, what="contacts in selection")
    found = await polku.contact(contacts[0])
    assert found is not None
    deals = next(j for j in found["journeys"] if j["journey"] == "deals")
    assert deals["stage"]["labels"] == {"fi": "Valinta", "en": "Selection"}
    assert [(t["from"], t["to"]) for t in deals["history"]] == [(None, "selection")]

    def every_endpoint_heard_of_everyone() -> bool:
        return all({r.verified()["contact"] for r in receiver.requests(path)} == set(contacts)
                   for path in ("/hooks/sales", "/hooks/crm"))

    await eventually(every_endpoint_heard_of_everyone, timeout_s=30, what="webhooks")
    sales = receiver.requests("/hooks/sales")
    assert len({r.webhook_id for r in sales}) == len(contacts)
    assert all(r.headers["x-team"] == "sales" for r in sales)
    crm = receiver.requests("/hooks/crm")[0].verified()
    assert set(crm) == {"v", "type", "transition_id", "contact", "to", "traits"}


async def test_a_redelivered_event_changes_nothing(polku: Deployment, receiver: Receiver
                                                  ) -> None:
    contact = f"modes-again-{uuid.uuid4().hex[:6]}"
    event = demo_request(contact, message_id=f"again-{uuid.uuid4().hex[:8]}")
    async with polku.client() as http:
        for _ in range(3):  # an SDK retrying a request whose answer it never saw
            assert (await http.post("/v1/track", json=event)).status_code == 200
        await eventually(lambda: len(receiver.requests("/hooks/sales")) >= 1, timeout_s=30,
                         what="the delivery")
        first = await polku.contact(contact)
        assert first is not None
        # A later, different event still counts: only the repeated messageId was dropped.
        second = {"type": "track", "event": "Demo Requested", "userId": contact,
                  "messageId": str(uuid.uuid4())}
        assert (await http.post("/v1/track", json=second)).status_code == 200

    async def second_applied() -> bool:
        found = await polku.contact(contact)
        assert found is not None
        return bool(found["journeys"][0]["last_event_at"]
                    != first["journeys"][0]["last_event_at"])

    await eventually(second_applied, timeout_s=20, what="the second event")
    found = await polku.contact(contact)
    assert found is not None
    deals = next(j for j in found["journeys"] if j["journey"] == "deals")
    assert [(t["from"], t["to"]) for t in deals["history"]] == [(None, "selection")]
    assert len(receiver.requests("/hooks/sales")) == 1


async def test_bad_input_is_refused_by_field_and_the_valid_rest_is_kept(
    polku: Deployment
) -> None:
    contact = f"modes-valid-{uuid.uuid4().hex[:6]}"
    async with polku.client() as http:
        answer = await http.post("/v1/batch", json={"batch": [
            {"type": "track", "userId": "someone"},  # no event name
            demo_request(contact),
        ]})
        assert answer.status_code == 200, answer.text
        assert [(r["index"], r["field"]) for r in answer.json()["rejected"]] == [(0, "event")]
        broken = await http.post("/v1/track", content=b"{not json",
                                 headers={"content-type": "application/json"})
        assert broken.status_code == 400
        assert broken.json()["field"] == "body"
    async with httpx.AsyncClient(base_url=polku.api.url, auth=("wk_not-a-key", "")) as http:
        refused = await http.post("/v1/track", json=demo_request(contact))
        assert refused.status_code == 401

    async def valid_one_applied() -> bool:
        return await polku.stage(contact, "deals") == "selection"

    await eventually(valid_one_applied, timeout_s=30, what="the valid event")


async def test_a_quiet_contact_is_moved_by_its_timer(polku: Deployment, receiver: Receiver
                                                    ) -> None:
    contact = f"modes-quiet-{uuid.uuid4().hex[:6]}"
    async with polku.client() as http:
        signed_up = {"type": "track", "event": "Signed Up", "userId": contact,
                     "messageId": str(uuid.uuid4())}
        assert (await http.post("/v1/track", json=signed_up)).status_code == 200

    async def at_risk() -> bool:
        return await polku.stage(contact, "quiet") == "at-risk"

    await eventually(at_risk, timeout_s=30, what="the timer")
    await eventually(lambda: len(receiver.requests("/hooks/at-risk")) == 1, timeout_s=30,
                     what="the at-risk webhook")
    body = receiver.requests("/hooks/at-risk")[0].verified()
    assert body["cause"] == {"kind": "timer", "rule": "went-quiet"}


async def test_a_failing_endpoint_is_dead_lettered_then_redelivered_with_its_id(
    polku: Deployment, receiver: Receiver
) -> None:
    receiver.on("/hooks/crm", lambda n: Reply(500) if n < 3 else Reply(204))
    contact = f"modes-dead-{uuid.uuid4().hex[:6]}"
    async with polku.client() as http:
        assert (await http.post("/v1/track", json=demo_request(contact))).status_code == 200
    async with httpx.AsyncClient(base_url=polku.deliveries.url, timeout=10) as http:

        async def dead_lettered() -> list[dict[str, Any]]:
            answer = await http.get("/v1/deliveries", params={"status": "failed"})
            assert answer.status_code == 200, answer.text
            return [d for d in answer.json()["deliveries"] if d["contact"] == contact]

        async def failed() -> bool:
            return len(await dead_lettered()) == 1

        # Three attempts (schedule 0, 0.2, 0.2 s), all answered 500: a dead letter.
        await eventually(failed, timeout_s=30, what="the dead letter")
        dead = (await dead_lettered())[0]
        assert dead["attempts"] == 3
        retried = await http.post(f"/v1/deliveries/{dead['id']}/retry")
        assert retried.status_code == 202, retried.text
    await eventually(lambda: len(receiver.requests("/hooks/crm")) == 4, timeout_s=30,
                     what="the redelivery")
    ids = {r.webhook_id for r in receiver.requests("/hooks/crm")}
    assert ids == {dead["id"]}


async def test_a_far_future_timestamp_is_taken_as_arrival_and_stops_nothing(
    polku: Deployment
) -> None:
    far = f"modes-far-{uuid.uuid4().hex[:6]}"
    after = f"modes-after-{uuid.uuid4().hex[:6]}"
    async with polku.client() as http:
        # Once, this overflowed the quiet journey's deadline and stopped the stager for good.
        poison = {"type": "track", "event": "Signed Up", "userId": far,
                  "timestamp": "9999-12-31T23:59:59Z", "messageId": str(uuid.uuid4())}
        assert (await http.post("/v1/track", json=poison)).status_code == 200
        assert (await http.post("/v1/track", json=demo_request(after))).status_code == 200

    async def both_applied() -> bool:
        return (await polku.stage(after, "deals") == "selection"
                and await polku.stage(far, "quiet") is not None)

    await eventually(both_applied, timeout_s=30, what="the events behind the far-future one")
    found = await polku.contact(far)
    assert found is not None
    quiet = next(j for j in found["journeys"] if j["journey"] == "quiet")
    assert quiet["last_event_at"] < "2100", quiet  # the arrival time, not the year 9999
