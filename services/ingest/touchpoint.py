"""Turns one Segment call (track, identify, page, screen, group, alias) into a touchpoint record.

The record is what the stager consumes: a Kafka key (the contact) and a JSON value, the
touchpoint message of shared.wire (docs/ingest.md describes it). This is the hot path of
ingest, so it is plain functions over the parsed JSON (no model objects), and each check raises
InvalidEvent naming the field.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson
from pydantic_core import PydanticSerializationError, to_json

from services.ingest.errors import InvalidEvent
from shared.journey import TOUCHPOINT_TYPES
from shared.wire import EARLIEST_EVENT_TIME, encode_touchpoint

TYPES = frozenset(TOUCHPOINT_TYPES)  # a set: one hash lookup per call
# The stager keeps contacts and messageIds in varchar(200) columns; longer ids would poison it.
MAX_ID_CHARS = 200
# Event times before EARLIEST_EVENT_TIME (the stager's reader refuses them too) are a device's reset
# clock or a bug, not an event: refused (400). Later times are kept, however old: a backfill of
# history is a legitimate use.
DEFAULT_MAX_FUTURE_SKEW = timedelta(hours=1)


class Record(NamedTuple):
    """One touchpoint ready for Kafka. (Named tuples: far cheaper to create than dataclasses.)"""

    key: bytes
    value: bytes
    type: str


class Arrival(NamedTuple):
    """What the server knows about the request that carried the calls (one per request: a named
    tuple is cheaper to create than a frozen dataclass)."""

    received_at: datetime
    received_text: str
    source_id: str
    max_event_bytes: int
    # How far past receivedAt an event time may be before it is taken for a wrong clock.
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW

    @classmethod
    def now(cls, source_id: str, max_event_bytes: int,
            max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW) -> Arrival:
        at = datetime.now(UTC)
        return cls(at, iso(at), source_id, max_event_bytes, max_future_skew)


def iso(moment: datetime) -> str:
    """UTC, millisecond precision, `Z` suffix: the one timestamp format on the topic."""
    # %-formatting is markedly faster than isoformat(), strftime() or an f-string here.
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
        moment.microsecond // 1000,
    )


def to_record(
    call: Any,
    arrival: Arrival,
    *,
    kind: str | None = None,
    batch_context: Mapping[str, Any] | None = None,
    batch_sent_at: Instant | None = None,
) -> Record:
    """Validate and normalise one call; `kind` comes from the endpoint, else from `type`.

    `batch_context` (a batch's top-level context) is merged under the call's own context,
    and `batch_sent_at` applies when the call carries no `sentAt` of its own.
    """
    if not isinstance(call, dict):
        raise InvalidEvent(None, "must be a JSON object")
    # A batch's context is merged into the message: only plain with it when there is none.
    plain = _check_size(call, arrival.max_event_bytes) and not batch_context
    get = call.get
    if kind is None:
        kind = get("type")
        if not isinstance(kind, str) or kind not in TYPES:
            raise InvalidEvent("type", f"must be one of {', '.join(sorted(TYPES))}, got "
                               f"{_show(kind)}")

    # Absent fields are the common case: test for None before calling a validator.
    user_id = get("userId")
    if user_id is not None:
        user_id = _id(user_id, "userId")
    anonymous_id = get("anonymousId")
    if anonymous_id is not None:
        anonymous_id = _id(anonymous_id, "anonymousId")
    previous_id = get("previousId")
    if previous_id is not None:
        previous_id = _id(previous_id, "previousId")
    group_id = get("groupId")
    if group_id is not None:
        group_id = _id(group_id, "groupId")
    if kind == "alias":
        if user_id is None:
            raise InvalidEvent("userId", "an alias call needs the new userId", "missing_field")
        if previous_id is None:
            raise InvalidEvent("previousId", "an alias call needs the previousId it replaces",
                               "missing_field")
    elif kind == "group" and group_id is None:
        raise InvalidEvent("groupId", "a group call needs a groupId", "missing_field")
    contact = user_id or anonymous_id
    if contact is None:
        raise InvalidEvent("userId", "userId or anonymousId is required", "missing_field")

    event = get("event")
    if event is not None and not isinstance(event, str):
        raise InvalidEvent("event", "must be a string")
    if kind == "track" and not event:
        raise InvalidEvent("event", "a track call needs an event name", "missing_field")
    name = get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidEvent("name", "must be a string")

    properties = _object(get("properties"), "properties")
    traits = _object(get("traits"), "traits")
    context = _object(get("context"), "context")
    if batch_context:
        context = {**batch_context, **context}
    if kind == "identify":
        # analytics.js and some SDKs send identify traits in context.traits.
        context_traits = context.get("traits")
        if isinstance(context_traits, dict) and context_traits:
            traits = {**context_traits, **traits}
    elif kind == "page" or kind == "screen":
        category = get("category")
        if isinstance(category, str) and "category" not in properties:
            properties = {**properties, "category": category}

    timestamp, original, sent_at, adjusted = _event_time(call, arrival, batch_sent_at)
    message_id = get("messageId")
    message_id = _id(message_id, "messageId") if message_id is not None else None

    # By position, in encode_touchpoint's order: keywords cost ~0.4 µs per event here.
    message = encode_touchpoint(
        kind, message_id or str(uuid.uuid4()), contact,
        user_id, anonymous_id, previous_id, group_id,
        event or None, name or None, properties, traits, context,
        timestamp, original, sent_at, arrival.received_text, arrival.source_id, adjusted,
    )
    return Record(contact.encode(), _encode_plain(message) if plain else _serialise(message),
                  kind)


def _check_size(call: dict[str, Any], limit: int) -> bool:
    """The per-event limit, on the call as JSON: exactly what docs/ingest.md promises.

    A single call's body is bounded while it is read; a batch item is not, so every call is
    measured here, before the server adds its own fields (receivedAt, sourceId, ...). True when
    the call is plain (see _plain_json), so the message made of it may be encoded by orjson.
    """
    data = _plain_json(call)
    plain = data is not None
    if data is None:
        try:
            data = to_json(call)
        except PydanticSerializationError as exc:  # nesting deeper than the serialiser allows
            raise InvalidEvent(None, f"cannot be stored: {exc}") from None
    size = len(data)
    if size > limit:
        raise InvalidEvent(None, f"the event is {size:,} bytes as JSON; at most {limit:,} "
                           "bytes are allowed per event", "too_large")
    return plain


def _plain_json(value: dict[str, Any]) -> bytes | None:
    """orjson's encoding of `value`, when it is exactly pydantic-core's and needs no check.

    orjson encodes these dicts 3-4 times faster, with the same bytes for every string, every
    finite float and every integer it takes (tests/unit/ingest/test_plain_json.py). It differs
    on what _serialise refuses or must inspect: it writes a number too large for a double
    (parsed as infinity) as null, and refuses integers beyond 64 bits. So its bytes are used
    only when every `null` in them stands for a top-level None (no infinity can hide) and no
    string holds a NUL; None sends the call down the checked path of pydantic-core.
    """
    try:
        data = orjson.dumps(value)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits
        return None
    if b"\\u0000" in data:
        return None
    if b"null" in data and data.count(b"null") != list(value.values()).count(None):
        return None
    return data


def _encode_plain(message: dict[str, Any]) -> bytes:
    """A message made of a plain call (and the server's own strings) is plain too: orjson."""
    try:
        return orjson.dumps(message)
    except orjson.JSONEncodeError:  # cannot happen for a plain call; never fail on it
        return _serialise(message)


class Instant(NamedTuple):
    """A validated client timestamp, in UTC and in the topic's text format."""

    at: datetime
    text: str


def parse_sent_at(value: Any) -> Instant | None:
    """A batch's top-level sentAt, validated like the per-event one."""
    return _time(value, "sentAt")


def _event_time(
    call: dict[str, Any], arrival: Arrival, batch_sent_at: Instant | None
) -> tuple[str, str | None, str | None, dict[str, str] | None]:
    """(timestamp, originalTimestamp, sentAt, timestampAdjusted) as written to the topic.

    The device's clock may be off; sentAt and the event's own time come from the same clock,
    so receivedAt - (sentAt - originalTimestamp) is the event time on the server's clock.
    That time is then bounded, because it drives the stager's clocks and timers: one event
    dated 9999 would fire every pending inactivity timer of its contact (or overflow computing
    the next one). Later than receivedAt + the allowed skew, it is replaced by receivedAt and
    the message says so (as Segment and Mixpanel do); before 2000 it is refused.
    """
    given = _time(call.get("timestamp"), "timestamp")
    original = _time(call.get("originalTimestamp"), "originalTimestamp") or given
    sent_at = _time(call.get("sentAt"), "sentAt") or batch_sent_at
    sent_text = sent_at.text if sent_at is not None else None
    if original is None:
        return arrival.received_text, None, sent_text, None
    field = "timestamp" if given is not None else "originalTimestamp"
    if sent_at is None:
        at, text = given or original
    else:
        try:
            at = arrival.received_at - (sent_at.at - original.at)
        except OverflowError:
            raise InvalidEvent("sentAt", "sentAt and timestamp are too far apart to correct "
                               "the device's clock") from None
        text = iso(at)
    if at < EARLIEST_EVENT_TIME:
        corrected = " (after correcting the device's clock with sentAt)" if sent_at else ""
        raise InvalidEvent(field, f"{text} is before 2000-01-01{corrected}; send the time the "
                           "event happened, with a time zone")
    if at - arrival.received_at > arrival.max_future_skew:
        return (arrival.received_text, original.text, sent_text,
                {"reason": "future", "original": text})
    return text, original.text, sent_text, None


def _time(value: Any, field: str) -> Instant | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEvent(field, "must be an ISO 8601 timestamp string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(field, f"{_show(value)} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise InvalidEvent(field, "needs a time zone, e.g. 2026-11-23T08:00:00.000Z")
    try:
        at = parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidEvent(field, f"{_show(value)} is out of range") from None
    return Instant(at, _canonical(value) or iso(at))


def _canonical(value: str) -> str | None:
    """The topic's format for the two shapes SDKs send, without formatting a datetime.

    `2026-11-23T08:00:00.123Z` is kept; `2026-11-23T08:00:00.123+00:00` loses its offset.
    Formatting a datetime costs more than the rest of a timestamp's handling, and the value
    already parsed, so the separators at positions 4, 7, 10, 13, 16 and 19 fix its shape.
    """
    if value[4:20:3] != "--T::.":
        return None
    n = len(value)
    if n == 24 and value[23] == "Z":
        return value
    if n == 29 and value.endswith("+00:00"):
        return value[:23] + "Z"
    return None


def _id(value: Any, field: str) -> str | None:
    """An identifier: a string (or an integer, as some clients send), empty meaning absent."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    else:
        raise InvalidEvent(field, "must be a string")
    if len(text) > MAX_ID_CHARS:
        raise InvalidEvent(field, f"is {len(text)} characters; at most {MAX_ID_CHARS} allowed")
    if "\x00" in text:  # checked here so the error names this field, not `contact`
        raise InvalidEvent(field, "contains a NUL character (\\u0000), which cannot be stored")
    return text or None


def _object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise InvalidEvent(field, "must be a JSON object")


def _serialise(message: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, refusing what downstream (JSON parsers, PostgreSQL) cannot keep.

    pydantic-core's serialiser is several times faster than the stdlib's on these dicts.
    """
    try:
        value = to_json(message)
    except PydanticSerializationError as exc:  # nesting deeper than the serialiser allows
        raise InvalidEvent(None, f"cannot be stored: {exc}") from None
    # The substring tests are cheap; the walk that names the field runs only on a hit, which
    # may be a false alarm (an escaped backslash before "u0000", a string saying "Infinity").
    if b"\\u0000" in value:
        # JSON escapes NUL as \u0000; PostgreSQL cannot store it in text or JSONB.
        field = _locate(message, _has_nul)
        if field:
            raise InvalidEvent(field, "contains a NUL character (\\u0000), which cannot be "
                               "stored")
    if b"Infinity" in value:
        # A number too large for a double parses as infinity, which JSON cannot express.
        # (NaN cannot arise: the parser refuses the literal and nothing computes on values.)
        field = _locate(message, _is_not_finite)
        if field:
            raise InvalidEvent(field, "is a number out of range")
    return value


def _has_nul(value: Any) -> bool:
    return isinstance(value, str) and "\x00" in value


def _is_not_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _locate(message: dict[str, Any], bad: Callable[[Any], bool]) -> str:
    try:
        return _find(message, bad)
    except RecursionError:  # as deep as the parser allows; name no field rather than fail
        return ""


def _find(value: Any, bad: Callable[[Any], bool], path: str = "") -> str:
    """Dotted path of the first key or value for which `bad` holds, else ''."""
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            found = here if bad(key) else _find(item, bad, here)
            if found:
                return found
        return ""
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _find(item, bad, f"{path}[{i}]")
            if found:
                return found
        return ""
    return (path or ".") if bad(value) else ""


def _show(value: Any) -> str:
    """A short rendering of a bad value for an error message."""
    if isinstance(value, list | dict):
        return f"a JSON {'array' if isinstance(value, list) else 'object'}"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
