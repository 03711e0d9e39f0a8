"""A Segment call becomes exactly the touchpoint message the stager expects, or a named error."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.errors import InvalidEvent
from services.ingest.touchpoint import (
    Arrival,
    _canonical,
    iso,
    parse_sent_at,
    to_record,
)
from shared.wire import decode_touchpoint

RECEIVED = datetime(2026, 11, 23, 8, 0, 30, 250000, tzinfo=UTC)
ARRIVAL = Arrival(RECEIVED, iso(RECEIVED), "source-1", 32 * 1024)


def message(call: dict[str, Any], **options: Any) -> dict[str, Any]:
    record = to_record(call, ARRIVAL, **options)
    decoded: dict[str, Any] = json.loads(record.value)
    assert record.key == decoded["contact"].encode()
    return decoded


def refusal(call: Any, **options: Any) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        to_record(call, ARRIVAL, **options)
    return caught.value


def test_a_track_call_becomes_the_wire_message_keyed_by_user_id() -> None:
    got = message({
        "userId": "u-1", "anonymousId": "a-1", "event": "Demo Requested",
        "messageId": "m-1", "properties": {"plan": "pro"},
        "context": {"page": {"path": "/pricing"}}, "integrations": {"All": True},
        "timestamp": "2026-11-23T07:59:00.000Z",
    }, kind="track")
    assert got == {
        "v": 1, "type": "track", "messageId": "m-1", "contact": "u-1",
        "userId": "u-1", "anonymousId": "a-1", "previousId": None, "groupId": None,
        "event": "Demo Requested", "name": None,
        "properties": {"plan": "pro"}, "traits": {}, "context": {"page": {"path": "/pricing"}},
        "timestamp": "2026-11-23T07:59:00.000Z", "originalTimestamp": "2026-11-23T07:59:00.000Z",
        "sentAt": None, "receivedAt": "2026-11-23T08:00:30.250Z", "sourceId": "source-1",
    }
    # The stager's own validator accepts it.
    decode_touchpoint(got)


def test_without_a_user_id_the_anonymous_id_is_the_contact() -> None:
    got = message({"anonymousId": "a-1", "name": "Pricing"}, kind="page")
    assert (got["contact"], got["userId"], got["anonymousId"]) == ("a-1", None, "a-1")


def test_the_event_time_is_corrected_for_the_device_clock() -> None:
    # The device clock is 10 minutes fast: it says it sent at 08:10:00 what happened at 08:09:50.
    got = message({"userId": "u", "event": "E", "timestamp": "2026-11-23T08:09:50.000+00:00",
                   "sentAt": "2026-11-23T08:10:00.000+00:00"}, kind="track")
    assert got["timestamp"] == iso(RECEIVED - timedelta(seconds=10))
    assert got["originalTimestamp"] == "2026-11-23T08:09:50.000Z"
    assert got["sentAt"] == "2026-11-23T08:10:00.000Z"


def test_a_batch_sent_at_applies_to_items_without_their_own() -> None:
    sent_at = parse_sent_at("2026-11-23T10:00:00+02:00")  # 08:00:00 UTC
    got = message({"type": "track", "userId": "u", "event": "E",
                   "originalTimestamp": "2026-11-23T07:59:00Z"}, batch_sent_at=sent_at)
    assert got["timestamp"] == iso(RECEIVED - timedelta(minutes=1))
    assert got["sentAt"] == "2026-11-23T08:00:00.000Z"


def test_without_sent_at_the_given_time_is_kept_and_without_any_time_received_at_is_used() -> None:
    given_time = message({"userId": "u", "event": "E", "timestamp": "2026-11-23T09:00:00+02:00"},
                         kind="track")
    assert given_time["timestamp"] == "2026-11-23T07:00:00.000Z"
    no_time = message({"userId": "u", "event": "E"}, kind="track")
    assert no_time["timestamp"] == no_time["receivedAt"] == "2026-11-23T08:00:30.250Z"
    assert no_time["originalTimestamp"] is None


def test_identify_traits_may_come_in_context_traits() -> None:
    got = message({"userId": "u", "traits": {"plan": "pro"},
                   "context": {"traits": {"persona": "cto", "plan": "free"}}}, kind="identify")
    assert got["traits"] == {"persona": "cto", "plan": "pro"}  # top-level traits win


def test_a_batch_context_is_merged_under_the_item_context() -> None:
    got = message({"type": "page", "userId": "u", "context": {"page": {"path": "/a"}}},
                  batch_context={"library": {"name": "sdk"}, "page": {"path": "/batch"}})
    assert got["context"] == {"library": {"name": "sdk"}, "page": {"path": "/a"}}


def test_alias_is_keyed_by_the_new_user_id_and_carries_the_previous_one() -> None:
    got = message({"userId": "u-1", "previousId": "anon-9"}, kind="alias")
    assert (got["contact"], got["previousId"]) == ("u-1", "anon-9")
    assert refusal({"previousId": "anon-9"}, kind="alias").field == "userId"
    assert refusal({"userId": "u-1"}, kind="alias").field == "previousId"


def test_group_needs_a_group_id_and_page_keeps_its_category() -> None:
    assert message({"userId": "u", "groupId": "acme"}, kind="group")["groupId"] == "acme"
    assert refusal({"userId": "u"}, kind="group").field == "groupId"
    page = message({"userId": "u", "name": "Docs", "category": "Help"}, kind="page")
    assert page["properties"] == {"category": "Help"}


def test_numeric_ids_are_kept_as_text_and_a_message_id_is_generated_when_absent() -> None:
    got = message({"userId": 42, "event": "E"}, kind="track")
    assert got["userId"] == got["contact"] == "42"
    assert len(got["messageId"]) == 36


@pytest.mark.parametrize(
    ("call", "field", "reason"),
    [
        ({"event": "E"}, "userId", "missing_field"),
        ({"userId": "", "anonymousId": "", "event": "E"}, "userId", "missing_field"),
        ({"userId": "u"}, "event", "missing_field"),
        ({"userId": ["u"], "event": "E"}, "userId", "invalid_field"),
        ({"userId": True, "event": "E"}, "userId", "invalid_field"),
        ({"userId": "u" * 201, "event": "E"}, "userId", "invalid_field"),
        ({"userId": "u", "event": 5}, "event", "invalid_field"),
        ({"userId": "u", "event": "E", "properties": []}, "properties", "invalid_field"),
        ({"userId": "u", "event": "E", "context": "x"}, "context", "invalid_field"),
        ({"userId": "u", "event": "E", "messageId": {}}, "messageId", "invalid_field"),
        ({"userId": "u", "event": "E", "timestamp": "yesterday"}, "timestamp", "invalid_field"),
        ({"userId": "u", "event": "E", "timestamp": "2026-11-23T08:00:00"}, "timestamp",
         "invalid_field"),
        ({"userId": "u", "event": "E", "timestamp": 1700000000}, "timestamp", "invalid_field"),
        ({"userId": "u", "event": "E", "sentAt": "0001-01-01T00:00:00+01:00"}, "sentAt",
         "invalid_field"),
        ({"userId": "u", "event": "E", "timestamp": "0001-01-01T00:00:00Z",
          "sentAt": "9999-12-31T00:00:00Z"}, "sentAt", "invalid_field"),
        ({"userId": "u", "event": "E", "properties": {"note": "a\x00b"}}, "properties.note",
         "invalid_field"),
        ({"userId": "a\x00b", "event": "E"}, "userId", "invalid_field"),
        ({"userId": "u", "event": "E", "properties": {"n": float("inf")}}, "properties.n",
         "invalid_field"),
    ],
)
def test_an_invalid_call_is_refused_naming_the_field(
    call: dict[str, Any], field: str, reason: str
) -> None:
    error = refusal(call, kind="track")
    assert (error.field, error.reason) == (field, reason)
    assert error.problem


def test_a_batch_item_needs_a_known_type() -> None:
    assert refusal({"userId": "u"}).field == "type"
    assert refusal({"type": ["track"], "userId": "u"}).field == "type"
    assert refusal({"type": "purchase", "userId": "u"}).field == "type"
    assert refusal("not an object").field is None


def test_an_event_over_the_size_limit_is_refused_as_too_large() -> None:
    error = refusal({"userId": "u", "event": "E", "properties": {"blob": "x" * 40_000}},
                    kind="track")
    assert (error.field, error.reason) == (None, "too_large")
    assert "32,768" in error.problem


def test_an_escaped_backslash_is_not_mistaken_for_a_nul() -> None:
    got = message({"userId": "u", "event": "E", "properties": {"path": "C:\\u0000"}},
                  kind="track")
    assert got["properties"]["path"] == "C:\\u0000"


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2999, 12, 31),
                    timezones=st.just(UTC)))
def test_the_canonical_shortcut_agrees_with_formatting_the_datetime(moment: datetime) -> None:
    for text in (moment.isoformat(timespec="milliseconds"), iso(moment)):
        parsed = datetime.fromisoformat(text)
        assert _canonical(text) in (None, iso(parsed))
        assert _canonical(text) is not None


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
FIELDS = st.sampled_from(["type", "userId", "anonymousId", "previousId", "groupId", "event",
                          "name", "messageId", "properties", "traits", "context", "timestamp",
                          "originalTimestamp", "sentAt", "category"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(FIELDS, JSON | st.sampled_from(
    ["track", "alias", "group", "u-1", "2026-11-23T08:00:00Z", "0001-01-01T00:00:00+14:00"]
)), st.sampled_from([None, "track", "identify", "page", "screen", "group", "alias"]))
def test_any_call_is_either_a_valid_touchpoint_or_a_named_refusal(
    call: dict[str, Any], kind: str | None
) -> None:
    try:
        got = message(call, kind=kind)
    except InvalidEvent as error:
        assert error.problem and error.reason in {"invalid_field", "missing_field", "too_large"}
        return
    decode_touchpoint(got)  # whatever ingest accepts, the stager can read


def test_an_event_of_exactly_the_size_limit_is_kept_and_one_byte_more_is_refused() -> None:
    def call(size: int) -> dict[str, Any]:
        shell = {"userId": "u", "event": "E", "properties": {"blob": ""}}
        padding = size - len(json.dumps(shell, separators=(",", ":")))
        return {**shell, "properties": {"blob": "x" * padding}}

    assert message(call(32 * 1024), kind="track")["properties"]["blob"]
    error = refusal(call(32 * 1024 + 1), kind="track")
    assert (error.field, error.reason) == (None, "too_large")
    assert "32,769 bytes" in error.problem and "32,768" in error.problem


def test_an_event_time_beyond_the_allowed_skew_becomes_received_at_and_is_flagged() -> None:
    got = message({"userId": "u", "event": "E", "timestamp": "9999-12-31T00:00:00Z"},
                  kind="track")
    assert got["timestamp"] == got["receivedAt"] == "2026-11-23T08:00:30.250Z"
    assert got["originalTimestamp"] == "9999-12-31T00:00:00.000Z"
    assert got["timestampAdjusted"] == {"reason": "future",
                                        "original": "9999-12-31T00:00:00.000Z"}
    # The stager reads the flagged message like any other.
    assert decode_touchpoint(got).timestamp == RECEIVED.replace(microsecond=250000)


def test_an_event_time_within_the_allowed_skew_is_kept_unflagged() -> None:
    soon = iso(RECEIVED + timedelta(minutes=59))
    got = message({"userId": "u", "event": "E", "timestamp": soon}, kind="track")
    assert got["timestamp"] == soon
    assert "timestampAdjusted" not in got


def test_the_future_bound_applies_after_correcting_the_device_clock_with_sent_at() -> None:
    # A device two days fast: its own times are far ahead, but the corrected time is not.
    fast = RECEIVED + timedelta(days=2)
    got = message({"userId": "u", "event": "E", "timestamp": iso(fast - timedelta(seconds=5)),
                   "sentAt": iso(fast)}, kind="track")
    assert got["timestamp"] == iso(RECEIVED - timedelta(seconds=5))
    assert "timestampAdjusted" not in got
    # Sent now but dated two days ahead on the same clock: adjusted.
    got = message({"userId": "u", "event": "E", "timestamp": iso(fast),
                   "sentAt": iso(RECEIVED)}, kind="track")
    assert got["timestamp"] == iso(RECEIVED)
    assert got["timestampAdjusted"]["reason"] == "future"


def test_the_allowed_future_skew_is_configurable() -> None:
    strict = Arrival(RECEIVED, iso(RECEIVED), "source-1", 32 * 1024, timedelta(seconds=10))
    ahead = iso(RECEIVED + timedelta(seconds=11))
    record = to_record({"userId": "u", "event": "E", "timestamp": ahead}, strict, kind="track")
    assert json.loads(record.value)["timestampAdjusted"]["original"] == ahead


@pytest.mark.parametrize("moment", ["1970-01-01T00:00:00Z", "1999-12-31T23:59:59.999Z"])
@pytest.mark.parametrize("field", ["timestamp", "originalTimestamp"])
def test_an_event_time_before_2000_is_refused_naming_the_field(moment: str, field: str) -> None:
    error = refusal({"userId": "u", "event": "E", field: moment}, kind="track")
    assert (error.field, error.reason) == (field, "invalid_field")
    assert "2000-01-01" in error.problem


def test_a_device_clock_reset_to_1970_is_corrected_with_sent_at_not_refused() -> None:
    got = message({"userId": "u", "event": "E", "timestamp": "1970-01-01T00:00:10.000Z",
                   "sentAt": "1970-01-01T00:00:20.000Z"}, kind="track")
    assert got["timestamp"] == iso(RECEIVED - timedelta(seconds=10))


def test_the_first_day_of_2000_is_an_event_time() -> None:
    got = message({"userId": "u", "event": "E", "timestamp": "2000-01-01T00:00:00Z"},
                  kind="track")
    assert got["timestamp"] == "2000-01-01T00:00:00.000Z"
