"""Planning deliveries: one per matching endpoint, stable ids, bodies narrowed by `fields`;
for transitions and for contact.merged records alike."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from services.actions.deliveries import endpoint_id, plan
from shared.journey import journey_from_yaml
from shared.wire import (
    ContactMerged,
    MalformedTransition,
    MergedRecord,
    TransitionRecord,
    decode_record,
    encode_merged,
)
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


MERGES = journey_from_yaml("""
id: aa-identity
version: 1
labels: {fi: Tunnistus, en: Identity}
stages:
  - {id: known, labels: {fi: Tunnettu, en: Known}}
rules:
  - {id: seen, to: known, when: {type: identify}}
actions:
  - on: {contact_merged: true}
    webhooks:
      - {url: "https://crm.example.com/hooks/merged", secret_env: CRM_SECRET,
         headers: {X-Team: identity}, fields: [at, traits.email, to, rule, journey]}
      - {url: "https://crm.example.com/hooks/sales", secret_env: MERGE_SALES_SECRET}
""")
WITH_MERGES = {**JOURNEYS, MERGES.id: MERGES}


def merged_message(contact: str = "user-123", merged: str = "anon-9") -> dict[str, Any]:
    merge = ContactMerged(contact, merged, "identify", "m-7",
                          datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    return encode_merged(merge, {"email": "a@example.com", "company": "Oy Ab"})


def planned_merge(message: dict[str, Any], journeys: Any = WITH_MERGES) -> list[Any]:
    return plan(decode_record(json.dumps(message).encode()), journeys)


def test_a_merge_goes_once_to_each_url_of_the_journeys_that_subscribe() -> None:
    record = merged_message()
    found = planned_merge(record)
    # The sales URL is also a transition webhook of `deals`; merges go only where asked for.
    assert [(p.url, p.journey_id, p.secret_env) for p in found] == [
        ("https://crm.example.com/hooks/merged", "aa-identity", "CRM_SECRET"),
        ("https://crm.example.com/hooks/sales", "aa-identity", "MERGE_SALES_SECRET"),
    ]
    assert all(p.transition_id == record["merge_id"] and p.contact == "user-123" for p in found)
    assert found[0].headers == {"X-Team": "identity"}
    assert planned_merge(record, JOURNEYS) == []


def test_a_merges_delivery_ids_are_stable_per_url_and_unlike_any_transitions() -> None:
    first, again = planned_merge(merged_message()), planned_merge(merged_message())
    assert [p.id for p in first] == [p.id for p in again]
    assert len({p.id for p in first}) == 2 and all(p.id.startswith("msg_") for p in first)
    other = planned_merge(merged_message(merged="anon-10"))
    assert not {p.id for p in first} & {p.id for p in other}
    transition = plan(decode_record(json.dumps(message()).encode()), WITH_MERGES)
    assert not {p.id for p in first} & {p.id for p in transition}


def test_a_merges_body_is_the_record_narrowed_by_fields_keeping_both_ids() -> None:
    record = merged_message()
    narrow, full = (json.loads(p.payload) for p in planned_merge(record))
    assert full == record
    # Names only a transition has (to, rule, journey) select nothing.
    assert narrow == {
        "v": 1, "type": "contact.merged", "merge_id": record["merge_id"],
        "contact": "user-123", "merged": "anon-9", "at": record["at"],
        "traits": {"email": "a@example.com"},
    }


def test_the_topic_reader_dispatches_on_type() -> None:
    assert isinstance(decode_record(json.dumps(message()).encode()), TransitionRecord)
    merged = decode_record(json.dumps(merged_message()).encode())
    assert isinstance(merged, MergedRecord)
    assert (merged.merge.contact, merged.merge.merged) == ("user-123", "anon-9")


@pytest.mark.parametrize(("change", "field"), [
    ({"type": "contact.renamed"}, "type: must be contact.stage_changed or contact.merged"),
    ({"type": None}, "type: "),
    ({"v": 2}, "v: must be 1"),
    ({"merged": ""}, "merged: must be a non-empty string"),
    ({"cause": "identify"}, "cause: must be an object"),
    ({"at": "2026-11-23T08:00:00"}, "at: needs a time zone"),
    ({"merge_id": "6f0f2a7e-39a4-5b8e-9a53-0c1d2e3f4a5b"}, "merge_id: "),
    ({"merge_id": None}, "merge_id: "),
])
def test_records_of_another_type_or_malformed_merges_are_rejected_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    with pytest.raises(MalformedTransition) as info:
        decode_record(json.dumps({**merged_message(), **change}).encode())
    assert info.value.reason == "invalid_field" and info.value.error.startswith(field)
