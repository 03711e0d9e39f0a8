"""Which deliveries a transition record makes: match the journey's webhooks, build each body.
Pure: no I/O, so the consumer's batch and the tests share it unchanged. The record itself, and
reading it, are shared.wire's (decode_transition)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.journey import Journey, WebhookTarget, delivery_id, webhooks_for
from shared.wire import TransitionRecord


@dataclass(frozen=True)
class PlannedDelivery:
    """A delivery to create: one transition to one endpoint, with the exact body to send."""

    id: str  # the Standard Webhooks `webhook-id`
    transition_id: str
    endpoint_id: str
    url: str
    journey_id: str
    contact: str
    payload: str
    secret_env: str | None
    secret_file: str | None
    headers: Mapping[str, str] = field(default_factory=dict)


def endpoint_id(url: str) -> str:
    """A stable, non-personal name for an endpoint (metric label, API handle)."""
    return "ep_" + hashlib.sha256(url.encode()).hexdigest()[:16]


def plan(record: TransitionRecord, journeys: Mapping[str, Journey]) -> list[PlannedDelivery]:
    """One delivery per endpoint the transition's journey sends it to (none for an unknown
    journey); ids are derived from transition and URL, identical on every redelivery."""
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


# Always in the body, whatever `fields` selects: a receiver dispatches on them.
_ALWAYS = ("v", "type")


def body(message: Mapping[str, Any], target: WebhookTarget) -> dict[str, Any]:
    """The webhook body: the transition record as published, narrowed to the target's `fields`.

    Field names are the journey engine's (`rule` selects `rule_id`, `journey`/`journey_version`
    select the parts of the `journey` object, `traits.<name>` one trait).
    """
    if target.fields is None:
        return dict(message)
    return select(message, target.fields)


def select(message: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    selected: dict[str, Any] = {k: message[k] for k in _ALWAYS if k in message}
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
        elif name == "rule":
            selected["rule_id"] = message.get("rule_id")
        elif name in message:
            selected[name] = message[name]
    return selected


def encode(document: Mapping[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
