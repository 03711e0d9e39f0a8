"""The touchpoint message: what ingest writes on the touchpoints topic and the stager reads.

One JSON object per Segment call, keyed by contact (docs/ingest.md, "On Kafka"). Ingest builds
it with `encode_touchpoint` from values it has already validated and serialises it itself (its
serialiser refuses, naming the field, what PostgreSQL cannot store); the stager, `polku
simulate` and the tests read it with `decode_touchpoint`, which trusts nothing: other producers
may write to the topic too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.journey import TOUCHPOINT_TYPES, InvalidTouchpoint, Touchpoint, parse_time

TOUCHPOINT_VERSION = 1

# The event times the engine accepts. Ingest refuses earlier ones and replaces a timestamp more
# than its configured skew ahead of receivedAt (docs/ingest.md); these bounds catch what another
# producer writes to the topic. A contact clock years ahead would make every inactivity timer
# fire at once, and one near datetime.max overflows the deadline arithmetic.
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_EVENT_TIME_AHEAD = timedelta(days=1)  # of receivedAt; ingest's skew setting stays below it


def encode_touchpoint(
    kind: str,
    message_id: str,
    contact: str,
    user_id: str | None,
    anonymous_id: str | None,
    previous_id: str | None,
    group_id: str | None,
    event: str | None,
    name: str | None,
    properties: dict[str, Any],
    traits: dict[str, Any],
    context: dict[str, Any],
    timestamp: str,
    original_timestamp: str | None,
    sent_at: str | None,
    received_at: str,
    source_id: str,
    timestamp_adjusted: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The message as a JSON object, from ingest's validated values (times already in the
    topic's text form). `timestamp_adjusted` says why `timestamp` is not the client's own time.

    Ingest's hot path: one dict literal, nothing else per event. (Ingest passes the values by
    position, in this order: binding 18 keywords would cost it about 0.4 µs per event.)
    """
    message: dict[str, Any] = {
        "v": TOUCHPOINT_VERSION,
        "type": kind,
        "messageId": message_id,
        "contact": contact,
        "userId": user_id,
        "anonymousId": anonymous_id,
        "previousId": previous_id,
        "groupId": group_id,
        "event": event,
        "name": name,
        "properties": properties,
        "traits": traits,
        "context": context,
        "timestamp": timestamp,
        "originalTimestamp": original_timestamp,
        "sentAt": sent_at,
        "receivedAt": received_at,
        "sourceId": source_id,
    }
    if timestamp_adjusted is not None:
        message["timestampAdjusted"] = timestamp_adjusted
    return message


def decode_touchpoint(message: object) -> Touchpoint:
    """Validate a parsed message; raises InvalidTouchpoint naming the offending field.

    The version is checked first: a message of another version is refused as a whole, never
    half-read.
    """
    if not isinstance(message, Mapping):
        raise InvalidTouchpoint("message", "must be a JSON object")
    version = message.get("v")
    if version != TOUCHPOINT_VERSION or isinstance(version, bool):
        raise InvalidTouchpoint("v", f"must be {TOUCHPOINT_VERSION}, got {_shown(version)}")
    kind = message.get("type")
    if kind not in TOUCHPOINT_TYPES:
        raise InvalidTouchpoint("type", f"must be one of {', '.join(TOUCHPOINT_TYPES)}, got "
                                f"{_shown(kind)}")
    user_id = _optional_text(message, "userId")
    anonymous_id = _optional_text(message, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise InvalidTouchpoint("userId", "userId or anonymousId is required")
    event = _optional_text(message, "event")
    if kind == "track" and event is None:
        raise InvalidTouchpoint("event", "a track call needs an event name")
    timestamp = _required_time(message, "timestamp")
    received_at = _required_time(message, "receivedAt")
    if timestamp < EARLIEST_EVENT_TIME:
        raise InvalidTouchpoint("timestamp", "is before 2000-01-01")
    if timestamp - received_at > MAX_EVENT_TIME_AHEAD:
        raise InvalidTouchpoint("timestamp", "is more than a day after receivedAt")
    return Touchpoint.of(
        type=str(kind),
        message_id=_required_text(message, "messageId"),
        contact=_required_text(message, "contact"),
        timestamp=timestamp,
        received_at=received_at,
        source_id=_required_text(message, "sourceId"),
        user_id=user_id,
        anonymous_id=anonymous_id,
        previous_id=_optional_text(message, "previousId"),
        group_id=_optional_text(message, "groupId"),
        event=event,
        name=_optional_text(message, "name"),
        properties=_object(message, "properties"),
        traits=_object(message, "traits"),
        context=_object(message, "context"),
        original_timestamp=_optional_time(message, "originalTimestamp"),
        sent_at=_optional_time(message, "sentAt"),
    )


def _shown(value: object) -> str:
    """A wrong value as a problem may quote it: numbers as they are, anything else by its kind
    only, since the stager logs the problem and the value could be anything (an email)."""
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    return f"a {type(value).__name__} value"


def _required_text(message: Mapping[str, Any], name: str) -> str:
    value = message.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidTouchpoint(name, "must be a non-empty string")
    return value


def _optional_text(message: Mapping[str, Any], key: str) -> str | None:
    value = message.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidTouchpoint(key, "must be a string or null")
    return value or None


def _object(message: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = message.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidTouchpoint(key, "must be a JSON object")
    return dict(value)


def _required_time(message: Mapping[str, Any], key: str) -> datetime:
    value = message.get(key)
    if not isinstance(value, str):
        raise InvalidTouchpoint(key, "must be an ISO 8601 timestamp string")
    return _time(key, value)


def _optional_time(message: Mapping[str, Any], key: str) -> datetime | None:
    value = message.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidTouchpoint(key, "must be an ISO 8601 timestamp string or null")
    return _time(key, value)


def _time(key: str, value: str) -> datetime:
    try:
        return parse_time(value)
    except ValueError as e:
        # Never the value itself (see _shown): the stager logs the problem.
        problem = str(e) if "time zone" in str(e) else "is not an ISO 8601 timestamp"
        raise InvalidTouchpoint(key, problem) from None
