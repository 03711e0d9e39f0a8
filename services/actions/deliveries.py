"""Which deliveries a transition record makes: parse it, match the journey's webhooks, build
each body. Pure: no I/O, so the consumer's batch and the tests share it unchanged."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.journey import Journey, Transition, WebhookTarget, delivery_id, webhooks_for


class MalformedTransition(Exception):
    """A record on the transitions topic that is not a transition this worker understands."""

    def __init__(self, reason: str, error: str) -> None:
        self.reason = reason  # label-safe code: invalid_json | invalid_field
        self.error = error  # which field and what is wrong; never the payload
        super().__init__(f"{reason}: {error}")


@dataclass(frozen=True)
class TransitionRecord:
    """A transition as published by the stager: the wire message, and the engine's form of it."""

    message: Mapping[str, Any]
    transition: Transition


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


def parse_record(value: bytes | None) -> TransitionRecord:
    try:
        message = json.loads(value) if value is not None else None
    except ValueError as exc:  # includes UnicodeDecodeError
        error = f"not UTF-8 JSON ({type(exc).__name__})"
        raise MalformedTransition("invalid_json", error) from None
    if not isinstance(message, dict):
        raise MalformedTransition("invalid_json", "not a JSON object")
    return TransitionRecord(message, _transition(message))


def _transition(message: Mapping[str, Any]) -> Transition:
    transition_id = _text(message, "transition_id")
    try:
        uuid.UUID(transition_id)
    except ValueError:
        raise MalformedTransition("invalid_field", "transition_id: must be a UUID") from None
    journey = message.get("journey")
    if not isinstance(journey, Mapping):
        raise MalformedTransition("invalid_field", "journey: must be an object")
    journey_id = _text(journey, "id", "journey.id")
    version = journey.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise MalformedTransition("invalid_field", "journey.version: must be an integer")
    to_stage = _stage(message, "to")
    if to_stage is None:
        raise MalformedTransition("invalid_field", "to: must be a stage object")
    try:
        at = datetime.fromisoformat(_text(message, "at"))
    except ValueError:
        raise MalformedTransition("invalid_field", "at: must be an ISO 8601 time") from None
    if at.tzinfo is None:
        raise MalformedTransition("invalid_field", "at: needs a time zone")
    rule_id = message.get("rule_id")
    if rule_id is not None and not isinstance(rule_id, str):
        raise MalformedTransition("invalid_field", "rule_id: must be a string or null")
    reason = message.get("reason")
    return Transition(
        transition_id=transition_id,
        journey_id=journey_id,
        journey_version=version,
        contact=_text(message, "contact"),
        from_stage=_stage(message, "from"),
        to_stage=to_stage,
        at=at.astimezone(UTC),
        cause=_cause(message.get("cause")),
        rule_id=rule_id,
        reason=reason if isinstance(reason, str) else "",
    )


def _text(data: Mapping[str, Any], key: str, name: str | None = None) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedTransition("invalid_field", f"{name or key}: must be a non-empty string")
    return value


def _stage(message: Mapping[str, Any], key: str) -> str | None:
    stage = message.get(key)
    if stage is None:
        return None
    if not isinstance(stage, Mapping):
        raise MalformedTransition("invalid_field", f"{key}: must be a stage object or null")
    return _text(stage, "id", f"{key}.id")


def _cause(cause: object) -> str:
    # The engine's form: the touchpoint's messageId, or "timer:<rule>".
    if isinstance(cause, Mapping):
        if cause.get("kind") == "timer":
            return f"timer:{cause.get('rule')}"
        return str(cause.get("message_id") or "")
    return ""


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
