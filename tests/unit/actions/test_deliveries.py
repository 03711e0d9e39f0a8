"""Planning deliveries: one per matching endpoint, stable ids, bodies narrowed by `fields`."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from services.actions.deliveries import endpoint_id, plan
from shared.journey import journey_from_yaml
from shared.wire import MalformedTransition
from shared.wire import decode_transition as parse_record

JOURNEY = journey_from_yaml("""
id: deals
version: 2
labels: {fi: Kaupat, en: Deals}
stages:
  - {id: learning, labels: {fi: Oppiminen, en: Learning}}
  - {id: prioritization, labels: {fi: Priorisointi, en: Prioritization}}
  - {id: selection, labels: {fi: Valinta, en: Selection}}
rules:
  - {id: demo-request, to: selection, when: {event: Demo Requested}}
  - {id: engaged, from: [learning], to: prioritization, when: {event: Webinar Attended}}
actions:
  - on: {stage_entered: selection}
    webhooks:
      - {url: "https://crm.example.com/hooks/sales", secret_env: SALES_SECRET,
         headers: {X-Team: sales}}
      - {url: "https://crm.example.com/hooks/narrow", secret_file: /run/secrets/narrow,
         fields: [transition_id, contact, to, traits.email, rule, journey_version]}
  - on: {rule: demo-request}
    webhooks:
      - {url: "https://crm.example.com/hooks/sales", secret_env: OTHER_SECRET}
  - on: {transition: {from: learning, to: prioritization}}
    webhooks:
      - {url: "https://mail.example.com/nurture", secret_env: MAIL_SECRET}
""")
JOURNEYS = {JOURNEY.id: JOURNEY}


def message(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "v": 1, "type": "contact.stage_changed", "transition_id": str(uuid.uuid4()),
        "journey": {"id": "deals", "version": 2}, "contact": "user-123",
        "traits": {"email": "a@example.com", "company": "Oy Ab"},
        "from": {"id": "prioritization", "labels": {"fi": "Priorisointi", "en": "Prioritization"}},
        "to": {"id": "selection", "labels": {"fi": "Valinta", "en": "Selection"}},
        "at": "2026-11-23T08:00:00.000Z",
        "cause": {"kind": "event", "message_id": "m-1", "event": "Demo Requested"},
        "rule_id": "demo-request", "reason": "asked for a demo",
    }
    base.update(overrides)
    return base


def planned(**overrides: Any) -> list[Any]:
    return plan(parse_record(json.dumps(message(**overrides)).encode()), JOURNEYS)


def test_each_matching_endpoint_gets_one_delivery_even_if_two_actions_name_it() -> None:
    found = planned()
    assert [p.url for p in found] == ["https://crm.example.com/hooks/sales",
                                      "https://crm.example.com/hooks/narrow"]
    sales = found[0]
    assert sales.secret_env == "SALES_SECRET"  # the first action naming the URL wins
    assert sales.headers == {"X-Team": "sales"}
    assert sales.endpoint_id == endpoint_id(sales.url) and sales.endpoint_id.startswith("ep_")


def test_ids_are_the_same_on_every_redelivery_and_differ_per_endpoint() -> None:
    transition_id = str(uuid.uuid4())
    first = planned(transition_id=transition_id)
    again = planned(transition_id=transition_id)
    assert [p.id for p in first] == [p.id for p in again]
    assert len({p.id for p in first}) == 2
    assert all(p.id.startswith("msg_") for p in first)


def test_the_full_body_is_the_transition_record_with_labels_cause_and_traits() -> None:
    record = message()
    body = json.loads(planned(**record)[0].payload)
    assert body == record


def test_fields_narrow_the_body_but_keep_its_type() -> None:
    record = message()
    body = json.loads(planned(**record)[1].payload)
    assert body == {
        "v": 1, "type": "contact.stage_changed", "transition_id": record["transition_id"],
        "contact": "user-123", "to": record["to"], "traits": {"email": "a@example.com"},
        "rule_id": "demo-request", "journey": {"version": 2},
    }


def test_transition_triggers_match_both_ends_and_unknown_journeys_match_nothing() -> None:
    learning = {"id": "learning", "labels": {"fi": "Oppiminen", "en": "Learning"}}
    prioritization = {"id": "prioritization", "labels": {"fi": "P", "en": "P"}}
    found = planned(**{"from": learning, "to": prioritization, "rule_id": "engaged"})
    assert [p.url for p in found] == ["https://mail.example.com/nurture"]
    assert planned(**{"from": None, "to": prioritization, "rule_id": None}) == []
    assert planned(journey={"id": "elsewhere", "version": 1}) == []


def test_timer_transitions_match_rule_actions() -> None:
    found = planned(cause={"kind": "timer", "rule": "demo-request"})
    assert len(found) == 2


@pytest.mark.parametrize(("value", "reason", "field"), [
    (b"\xff not json", "invalid_json", "UTF-8 JSON"),
    (b"[1, 2]", "invalid_json", "object"),
    (json.dumps(message(transition_id="t-1")).encode(), "invalid_field", "transition_id"),
    (json.dumps(message(journey="deals")).encode(), "invalid_field", "journey"),
    (json.dumps(message(to=None)).encode(), "invalid_field", "to"),
    (json.dumps(message(at="yesterday")).encode(), "invalid_field", "at"),
    (json.dumps(message(contact="")).encode(), "invalid_field", "contact"),
])
def test_records_that_are_not_transitions_are_rejected_with_a_reason(
    value: bytes, reason: str, field: str
) -> None:
    with pytest.raises(MalformedTransition) as info:
        parse_record(value)
    assert info.value.reason == reason and field in info.value.error
