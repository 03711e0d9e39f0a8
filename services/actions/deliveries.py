"""Which deliveries a record of the transitions topic makes: match webhooks, build each body.

A transition record goes to the webhooks of its journey's matching actions; a contact.merged
record to those of every journey with an `on: {contact_merged: true}` action. Pure: no I/O, so
the consumer's batch and the tests share it unchanged. The records themselves, and reading them,
are shared.wire's (decode_record)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.journey import (
    Journey,
    WebhookTarget,
    delivery_id,
    merge_delivery_id,
    merge_webhooks,
    webhooks_for,
)
from shared.wire import MergedRecord, TopicRecord


@dataclass(frozen=True)
class PlannedDelivery:
    """A delivery to create: one transition (or merge) to one endpoint, with the exact body."""

    id: str  # the Standard Webhooks `webhook-id`
    transition_id: str  # of a merge: its merge_id
    endpoint_id: str
    url: str
    journey_id: str  # of a merge: the first journey (by id) whose actions name the URL
    contact: str  # of a merge: the contact the other id joined
    payload: str
    secret_env: str | None
    secret_file: str | None
    headers: Mapping[str, str] = field(default_factory=dict)


def endpoint_id(url: str) -> str:
    """A stable, non-personal name for an endpoint (metric label, API handle)."""
    return "ep_" + hashlib.sha256(url.encode()).hexdigest()[:16]


def endpoints_of(journeys: Iterable[Journey]) -> set[str]:
    """The id of every endpoint the journeys send webhooks to."""
    return {endpoint_id(target.url) for journey in journeys for action in journey.actions
            for target in action.webhooks}


def plan(record: TopicRecord, journeys: Mapping[str, Journey]) -> list[PlannedDelivery]:
    """One delivery per endpoint the transition's journey sends it to (none for an unknown
    journey), or per endpoint any journey sends merges to; ids are derived from the transition
    (or merge) and the URL, identical on every redelivery."""
    if isinstance(record, MergedRecord):
        return _plan_merge(record, journeys)
    transition = record.transition
    journey = journeys.get(transition.journey_id)
    if journey is None:
        return []
    return [
        PlannedDelivery(
            id=delivery_id(transition, target),
            transition_id=transition.transition_id,
            endpoint_id=endpoint_id(target.url),
            url=target.url,
            journey_id=transition.journey_id,
            contact=transition.contact,
            payload=encode(body(record.message, target)),
            secret_env=target.secret_env,
            secret_file=target.secret_file,
            headers=dict(target.headers),
        )
        for target in webhooks_for(journey, transition)
    ]


def _plan_merge(record: MergedRecord, journeys: Mapping[str, Journey]) -> list[PlannedDelivery]:
    merge = record.merge
    return [
        PlannedDelivery(
            id=merge_delivery_id(merge.merge_id, target),
            transition_id=merge.merge_id,
            endpoint_id=endpoint_id(target.url),
            url=target.url,
            journey_id=journey_id,
            contact=merge.contact,
            payload=encode(body(record.message, target, _ALWAYS_MERGED)),
            secret_env=target.secret_env,
            secret_file=target.secret_file,
            headers=dict(target.headers),
        )
        for journey_id, target in merge_webhooks(journeys.values())
    ]


# Always in the body, whatever `fields` selects: a receiver dispatches on them.
_ALWAYS = ("v", "type")
# A merge record without both ids and its id would say nothing.
_ALWAYS_MERGED = (*_ALWAYS, "merge_id", "contact", "merged")


def body(message: Mapping[str, Any], target: WebhookTarget,
         always: Sequence[str] = _ALWAYS) -> dict[str, Any]:
    """The webhook body: the record as published, narrowed to the target's `fields`.

    Field names are the journey engine's (`rule` selects `rule_id`, `journey`/`journey_version`
    select the parts of the `journey` object, `traits.<name>` one trait). A name the record does
    not have selects nothing: a contact.merged record keeps `at`, `cause` and `traits` as they
    are selected, and its ids whatever the selection (`always`).
    """
    if target.fields is None:
        return dict(message)
    return select(message, target.fields, always)


def select(message: Mapping[str, Any], fields: Sequence[str],
           always: Sequence[str] = _ALWAYS) -> dict[str, Any]:
    selected: dict[str, Any] = {k: message[k] for k in always if k in message}
    found = message.get("journey")
    journey: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    for name in fields:
        if name.startswith("traits."):
            trait = name.removeprefix("traits.")
            traits = message.get("traits")
            if isinstance(traits, Mapping) and trait in traits:
                selected.setdefault("traits", {})[trait] = traits[trait]
        elif name == "journey" and "id" in journey:
            selected.setdefault("journey", {})["id"] = journey["id"]
        elif name == "journey_version" and "version" in journey:
            selected.setdefault("journey", {})["version"] = journey["version"]
        elif name == "rule" and "rule_id" in message:
            selected["rule_id"] = message["rule_id"]
        elif name in message:
            selected[name] = message[name]
    return selected


def encode(document: Mapping[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
