"""Specification of the touchpoint wire format and what counts as malformed."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.journey import InvalidTouchpoint, Touchpoint
from shared.wire import decode_touchpoint

from .messages import message


def test_a_well_formed_track_message_becomes_a_touchpoint() -> None:
    raw = message("track", event="Demo Requested", properties={"plan": "pro"})
    raw["timestamp"] = raw["receivedAt"] = "2026-11-23T08:00:00.000Z"
    touchpoint = decode_touchpoint(raw)
    assert touchpoint.type == "track"
    assert touchpoint.event == "Demo Requested"
    assert touchpoint.contact == "alice"
    assert touchpoint.timestamp == datetime(2026, 11, 23, 8, tzinfo=UTC)
    assert touchpoint.properties == {"plan": "pro"}


def test_timestamps_with_offsets_are_normalised_to_utc() -> None:
    raw = message("page")
    raw["timestamp"] = "2026-11-23T10:00:00+02:00"
    raw["receivedAt"] = "2026-11-23T08:00:00Z"
    assert decode_touchpoint(raw).timestamp == datetime(2026, 11, 23, 8, tzinfo=UTC)


def test_null_objects_become_empty_and_anonymous_contacts_are_fine() -> None:
    raw = message("page")
    raw.update(properties=None, traits=None, context=None, userId=None, anonymousId="anon-1")
    touchpoint = decode_touchpoint(raw)
    assert touchpoint.properties == {} and touchpoint.anonymous_id == "anon-1"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"v": 2}, "v"),
        ({"v": True}, "v"),
        ({"type": "click"}, "type"),
        ({"messageId": ""}, "messageId"),
        ({"messageId": 7}, "messageId"),
        ({"contact": None}, "contact"),
        ({"userId": None, "anonymousId": None}, "userId"),
        ({"event": None}, "event"),
        ({"properties": []}, "properties"),
        ({"context": "web"}, "context"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": "2026-11-23T08:00:00"}, "timestamp"),
        ({"timestamp": None}, "timestamp"),
        ({"timestamp": "1999-12-31T23:59:59Z"}, "timestamp"),
        ({"timestamp": "9999-12-31T00:00:00Z"}, "timestamp"),
        ({"receivedAt": 1700000000}, "receivedAt"),
        ({"sentAt": "soon"}, "sentAt"),
        ({"sourceId": None}, "sourceId"),
        ({"previousId": 3}, "previousId"),
    ],
)
def test_a_malformed_message_is_rejected_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    raw = message("track", event="Signed Up")
    raw.update(change)
    with pytest.raises(InvalidTouchpoint) as error:
        decode_touchpoint(raw)
    assert error.value.field == field
    assert str(error.value).startswith(f"{field}: ")


def test_a_message_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(InvalidTouchpoint):
        decode_touchpoint(["not", "an", "object"])


def test_identify_traits_and_context_traits_describe_the_contact_but_group_traits_do_not() -> None:
    identify = decode_touchpoint(
        message("identify", traits={"plan": "pro"}, context={"traits": {"plan": "free", "x": 1}})
    )
    assert identify.contact_traits == {"plan": "pro", "x": 1}
    tracked = decode_touchpoint(
        message("track", event="E", traits={"ignored": 1}, context={"traits": {"email": "a@b"}})
    )
    assert tracked.contact_traits == {"email": "a@b"}
    group = decode_touchpoint(message("group", traits={"employees": 50}))
    assert group.contact_traits == {}


def test_an_event_time_up_to_a_day_ahead_of_arrival_is_accepted() -> None:
    raw = message("page")
    raw["receivedAt"] = "2026-11-23T08:00:00Z"
    raw["timestamp"] = "2026-11-24T08:00:00Z"
    assert decode_touchpoint(raw).timestamp == datetime(2026, 11, 24, 8, tzinfo=UTC)
    raw["timestamp"] = "2026-11-24T08:00:00.001Z"
    with pytest.raises(InvalidTouchpoint, match="more than a day after receivedAt"):
        decode_touchpoint(raw)


def test_a_touchpoint_built_from_all_its_fields_equals_the_constructed_one() -> None:
    at = datetime(2026, 9, 1, tzinfo=UTC)
    made = Touchpoint("track", "m-1", "c-1", at, at, "web", user_id="c-1", event="Demo Requested")
    assert Touchpoint.of(**asdict(made)) == made
    with pytest.raises(TypeError, match="exactly the fields"):
        Touchpoint.of(type="track", message_id="m-1")
