"""A touchpoint: one validated message from the touchpoints topic, as the engine sees it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from shared.journey.channel import derive_channel
from shared.journey.errors import InvalidTouchpoint

WIRE_VERSION = 1
TYPES = ("track", "identify", "page", "screen", "group", "alias")

# The event times the engine accepts. Ingest refuses earlier ones and replaces a timestamp more
# than its configured skew ahead of receivedAt (docs/ingest.md); these bounds catch what another
# producer writes to the topic. A contact clock years ahead would make every inactivity timer
# fire at once, and one near datetime.max overflows the deadline arithmetic.
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_EVENT_TIME_AHEAD = timedelta(days=1)  # of receivedAt; ingest's skew setting stays below it


@dataclass(frozen=True)
class Touchpoint:
    type: str
    message_id: str
    contact: str
    timestamp: datetime
    received_at: datetime
    source_id: str
    user_id: str | None = None
    anonymous_id: str | None = None
    previous_id: str | None = None
    group_id: str | None = None
    event: str | None = None
    name: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    traits: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)
    original_timestamp: datetime | None = None
    sent_at: datetime | None = None

    # Both derived values are cached on first use: every journey asks for them, and a touchpoint
    # never changes (a frozen dataclass; cached_property writes straight into its __dict__).
    @cached_property
    def channel(self) -> str:
        return derive_channel(self.properties, self.context)

    @cached_property
    def contact_traits(self) -> Mapping[str, Any]:
        """Traits this touchpoint says about its contact.

        identify carries them in `traits`, other calls may carry them in `context.traits`
        (Segment does so); group traits describe the group, not the contact, so they are left out.
        """
        if self.type == "group":
            return {}
        merged: dict[str, Any] = {}
        context_traits = self.context.get("traits")
        if isinstance(context_traits, Mapping):
            merged.update(context_traits)
        if self.type == "identify" and self.traits:
            merged.update(self.traits)
        return merged

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> Touchpoint:
        """Validate a wire message; raises InvalidTouchpoint naming the offending field."""
        if not isinstance(message, Mapping):
            raise InvalidTouchpoint("message", "must be a JSON object")
        version = message.get("v")
        if version != WIRE_VERSION or isinstance(version, bool):
            raise InvalidTouchpoint("v", f"must be {WIRE_VERSION}, got {version!r}")
        kind = message.get("type")
        if kind not in TYPES:
            raise InvalidTouchpoint("type", f"must be one of {', '.join(TYPES)}, got {kind!r}")
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
        return cls(
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


def parse_time(text: str) -> datetime:
    """An ISO 8601 instant with a zone, normalised to UTC; raises ValueError otherwise."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is UTC:  # already normalised, e.g. every time the engine itself stored
        return parsed
    if parsed.tzinfo is None:
        raise ValueError("needs a time zone, e.g. 2026-11-23T08:00:00Z")
    return parsed.astimezone(UTC)


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
        problem = str(e) if "time zone" in str(e) else f"{value!r} is not an ISO 8601 timestamp"
        raise InvalidTouchpoint(key, problem) from None
