"""The transition record: what the stager publishes on the transitions topic and actions reads.

The record is also the webhook body (docs/webhooks.md, "The body"): a receiver sees exactly what
`encode_transition` builds, narrowed by a target's `fields`. So it carries, beside the engine's
Transition, what a receiver needs without asking back: stage labels, the contact's traits and
first/last touch right after the step, and the cause spelled out as an object. `decode_transition`
recovers the engine's Transition from it (the record itself stays the body to send) and refuses,
as MalformedTransition, anything it cannot trust, including a record of another version.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.journey import (
    ContactState,
    Journey,
    Transition,
    merge_cause,
    merged_id,
    timer_cause,
    timer_rule,
)

TRANSITION_VERSION = 1
TRANSITION_TYPE = "contact.stage_changed"


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


def encode_transition(
    transition: Transition, journey: Journey | None, state: ContactState | None,
    cause_event: str | None,
) -> dict[str, Any]:
    """The record as a JSON object. `state` is the contact's right after the step that made the
    transition, `cause_event` the event name of the touchpoint that caused it (if one did)."""

    def stage(stage_id: str | None) -> dict[str, Any] | None:
        if stage_id is None:
            return None
        found = journey.stage(stage_id) if journey is not None else None
        labels = found.labels.as_json() if found else {}
        return {"id": stage_id, "labels": labels}

    # The channels the contact first and last came through, shaped as the read API shows
    # them: sales asks for the first-touch channel on the hand-off webhook.
    first, last = (state.first_touch, state.last_touch) if state is not None else (None, None)
    return {
        "v": TRANSITION_VERSION,
        "type": TRANSITION_TYPE,
        "transition_id": transition.transition_id,
        "journey": {"id": transition.journey_id, "version": transition.journey_version},
        "contact": transition.contact,
        "traits": dict(state.traits) if state is not None else {},
        "from": stage(transition.from_stage),
        "to": stage(transition.to_stage),
        "at": transition.at.isoformat(),
        "cause": _cause_json(transition.cause, cause_event),
        "rule_id": transition.rule_id,
        "reason": transition.reason,
        "first_touch": {"channel": first.channel, "at": first.at.isoformat()} if first else None,
        "last_touch": {"channel": last.channel, "at": last.at.isoformat()} if last else None,
    }


def decode_transition(value: bytes | None) -> TransitionRecord:
    """Parse and check a record's value; raises MalformedTransition with a reason and the field."""
    return transition_record(json_object(value))


def json_object(value: bytes | None) -> dict[str, Any]:
    """A record's value as a JSON object, or MalformedTransition (`invalid_json`)."""
    try:
        message = json.loads(value) if value is not None else None
    except ValueError as exc:  # includes UnicodeDecodeError
        error = f"not UTF-8 JSON ({type(exc).__name__})"
        raise MalformedTransition("invalid_json", error) from None
    if not isinstance(message, dict):
        raise MalformedTransition("invalid_json", "not a JSON object")
    return message


def transition_record(message: Mapping[str, Any]) -> TransitionRecord:
    """Check a parsed transition record; raises MalformedTransition naming the field."""
    version = message.get("v")
    if version != TRANSITION_VERSION or isinstance(version, bool):
        raise MalformedTransition("invalid_field",
                                  f"v: must be {TRANSITION_VERSION}, got {version!r}")
    return TransitionRecord(message, _transition(message))


def _cause_json(cause: str, event: str | None) -> dict[str, Any]:
    rule = timer_rule(cause)
    if rule is not None:
        return {"kind": "timer", "rule": rule}
    linked = merged_id(cause)
    if linked is not None:
        return {"kind": "merge", "merged": linked}
    return {"kind": "event", "message_id": cause, "event": event}


def _cause(cause: object) -> str:
    """The engine's form of the cause (see shared.journey.timer_cause); '' when absent."""
    if isinstance(cause, Mapping):
        if cause.get("kind") == "timer":
            return timer_cause(str(cause.get("rule")))
        if cause.get("kind") == "merge":
            return merge_cause(str(cause.get("merged")))
        return str(cause.get("message_id") or "")
    return ""


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
