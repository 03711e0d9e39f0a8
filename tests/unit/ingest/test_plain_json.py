"""Calls that need no inspection are encoded by orjson: byte for byte what the checked path
(pydantic-core, then the NUL and infinity checks) writes, and never for a call that needs it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from unittest.mock import patch

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_core import from_json, to_json

from services.ingest import touchpoint
from services.ingest.errors import InvalidEvent
from services.ingest.touchpoint import Arrival, iso, to_record

RECEIVED = datetime(2026, 11, 23, 8, 0, 30, 250000, tzinfo=UTC)
ARRIVAL = Arrival(RECEIVED, iso(RECEIVED), "source-1", 32 * 1024)

# What the strict parser can hand over, less what orjson does not write as pydantic-core does.
PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
# And everything it can hand over: huge integers, and infinity (a number too large for a double).
ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(max_size=8), PLAIN, max_size=6))
def test_orjson_writes_the_same_bytes_as_pydantic_core_for_plain_values(
    value: dict[str, Any],
) -> None:
    assert orjson.dumps(value) == to_json(value)


def checked(call: dict[str, Any], **options: Any) -> bytes:
    """The record's value as the checked path alone writes it."""
    with patch.object(touchpoint, "_plain_json", return_value=None):
        return to_record(call, ARRIVAL, **options).value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY, ANY, ANY, ANY)
def test_a_call_becomes_the_same_bytes_whichever_path_encodes_it(
    properties: Any, context: Any, anonymous_id: Any, extra: Any
) -> None:
    call = {"userId": "u-1", "event": "E", "messageId": "m-1", "properties": properties,
            "context": context, "anonymousId": anonymous_id, "integrations": extra}
    try:
        expected = checked(call, kind="track")
    except InvalidEvent as refused:
        with pytest.raises(InvalidEvent) as caught:
            to_record(call, ARRIVAL, kind="track")
        assert (caught.value.field, caught.value.reason) == (refused.field, refused.reason)
        return
    assert to_record(call, ARRIVAL, kind="track").value == expected


def test_a_plain_call_is_encoded_by_orjson() -> None:
    call = {"userId": "u-1", "anonymousId": None, "event": "E", "messageId": "m-1",
            "properties": {"plan": "pro", "seats": 25, "cost": 0.42, "note": "null"}}
    assert touchpoint._plain_json(call) is None  # "null" inside a string: checked path
    del call["properties"]["note"]  # type: ignore[attr-defined]
    assert touchpoint._plain_json(call) == to_json(call)
    assert to_record(call, ARRIVAL, kind="track").value == checked(call, kind="track")


@pytest.mark.parametrize("call, field", [
    # infinity is written null by orjson: the count of nulls gives it away, beside a real None
    ({"anonymousId": None, "properties": {"n": float("inf")}}, "properties.n"),
    ({"properties": {"n": [None, float("-inf")]}}, "properties.n[1]"),
    ({"properties": {"note": "a\x00b"}}, "properties.note"),
    ({"traits": {"a\x00": 1}}, "traits.a\x00"),
])
def test_what_orjson_would_hide_is_still_refused_naming_the_field(
    call: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidEvent) as caught:
        to_record({"userId": "u", "event": "E", **call}, ARRIVAL, kind="track")
    assert (caught.value.field, caught.value.reason) == (field, "invalid_field")


def test_a_batch_context_goes_through_the_checks_too() -> None:
    with pytest.raises(InvalidEvent) as caught:
        to_record({"userId": "u", "event": "E"}, ARRIVAL, kind="track",
                  batch_context={"n": float("inf")})
    assert caught.value.field == "context.n"


def test_an_integer_beyond_64_bits_is_kept_exactly() -> None:
    value = to_record({"userId": "u", "event": "E", "properties": {"n": 2**70, "m": -(2**64)}},
                      ARRIVAL, kind="track").value
    assert from_json(value)["properties"] == {"n": 2**70, "m": -(2**64)}


def test_a_nul_in_a_field_that_is_not_forwarded_does_not_refuse_the_call() -> None:
    value = to_record({"userId": "u", "event": "E", "integrations": {"x\x00": True}}, ARRIVAL,
                      kind="track").value
    assert b"integrations" not in value
