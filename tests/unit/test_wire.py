"""Specification of the messages between processes (shared.wire): each reads back what was
written, a reader refuses a version it does not know, and every writer partitions alike."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.publish import ContactHashes
from shared.journey import (
    TOUCHPOINT_TYPES,
    ContactState,
    InvalidTouchpoint,
    Touch,
    Touchpoint,
    Transition,
    timer_cause,
)
from shared.settings import KafkaSettings
from shared.wire import (
    TOUCHPOINT_VERSION,
    TRANSITION_VERSION,
    DeadLetter,
    MalformedTransition,
    Topics,
    decode_touchpoint,
    decode_transition,
    encode_touchpoint,
    encode_transition,
    key_hash,
    partition_for_key,
)
from tests.unit.journey.messages import funnel

ids = st.text(min_size=1, max_size=12)
optional_ids = st.none() | ids
scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8) | \
    st.floats(allow_nan=False, allow_infinity=False)
json_objects = st.dictionaries(
    st.text(max_size=8),
    st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8),
    max_size=4,
)
# Any instant the reader accepts; written as ISO 8601 with a zone, as ingest does.
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                        timezones=st.just(UTC))
not_the_version = (st.none() | st.booleans() | st.integers() | st.text(max_size=5)
                   | st.floats(allow_nan=False)).filter(lambda v: v != 1 or isinstance(v, bool))


@st.composite
def touchpoint_values(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments of encode_touchpoint that ingest could produce."""
    kind = draw(st.sampled_from(TOUCHPOINT_TYPES))
    user_id, anonymous_id = draw(optional_ids), draw(optional_ids)
    if user_id is None and anonymous_id is None:
        user_id = draw(ids)
    received_at = draw(instants)
    timestamp = received_at - draw(st.timedeltas(timedelta(days=-1), timedelta(days=3650)))
    timestamp = max(timestamp, datetime(2000, 1, 1, tzinfo=UTC))
    return {
        "kind": kind,
        "message_id": draw(ids),
        "contact": user_id or anonymous_id,
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "previous_id": draw(optional_ids),
        "group_id": draw(optional_ids),
        "event": draw(ids) if kind == "track" else draw(optional_ids),
        "name": draw(optional_ids),
        "properties": draw(json_objects),
        "traits": draw(json_objects),
        "context": draw(json_objects),
        "timestamp": timestamp.isoformat(),
        "original_timestamp": draw(st.none() | instants.map(datetime.isoformat)),
        "sent_at": draw(st.none() | instants.map(datetime.isoformat)),
        "received_at": received_at.isoformat(),
        "source_id": draw(ids),
        "timestamp_adjusted": draw(st.none() | st.just({"reason": "future",
                                                        "original": "2999-01-01T00:00:00Z"})),
    }


def through_the_topic(message: dict[str, Any]) -> Any:
    return json.loads(json.dumps(message))


def moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


@settings(max_examples=200, deadline=None)
@given(touchpoint_values())
def test_a_touchpoint_reads_back_as_ingest_wrote_it(values: dict[str, Any]) -> None:
    message = encode_touchpoint(**values)
    assert decode_touchpoint(through_the_topic(message)) == Touchpoint(
        type=values["kind"],
        message_id=values["message_id"],
        contact=values["contact"],
        timestamp=datetime.fromisoformat(values["timestamp"]),
        received_at=datetime.fromisoformat(values["received_at"]),
        source_id=values["source_id"],
        user_id=values["user_id"],
        anonymous_id=values["anonymous_id"],
        previous_id=values["previous_id"],
        group_id=values["group_id"],
        event=values["event"],
        name=values["name"],
        properties=values["properties"],
        traits=values["traits"],
        context=values["context"],
        original_timestamp=moment(values["original_timestamp"]),
        sent_at=moment(values["sent_at"]),
    )
    assert message["v"] == TOUCHPOINT_VERSION


@settings(max_examples=100, deadline=None)
@given(touchpoint_values(), not_the_version)
def test_a_touchpoint_of_another_version_is_refused_naming_v(
    values: dict[str, Any], version: Any
) -> None:
    message = {**encode_touchpoint(**values), "v": version}
    with pytest.raises(InvalidTouchpoint) as error:
        decode_touchpoint(through_the_topic(message))
    assert error.value.field == "v"
    without = encode_touchpoint(**values)
    del without["v"]
    with pytest.raises(InvalidTouchpoint, match=r"^v: "):
        decode_touchpoint(without)


@pytest.mark.parametrize("field", ["v", "type", "timestamp", "receivedAt"])
def test_a_malformed_touchpoint_s_problem_never_quotes_the_value(field: str) -> None:
    # The stager logs the problem of every message it dead-letters; the value could be an
    # email (the dead letter itself keeps the whole message for the operator).
    message = {**encode_touchpoint(
        kind="track", message_id="m-1", contact="u-1", user_id="u-1", anonymous_id=None,
        previous_id=None, group_id=None, event="Demo Requested", name=None, properties={},
        traits={}, context={}, timestamp="2026-11-23T08:00:00.000Z", original_timestamp=None,
        sent_at=None, received_at="2026-11-23T08:00:01.000Z", source_id="s-1"),
        field: "canary@example.com"}
    with pytest.raises(InvalidTouchpoint) as error:
        decode_touchpoint(message)
    assert error.value.field == field
    assert "canary" not in str(error.value)


def test_a_touchpoint_has_the_fields_docs_ingest_md_lists() -> None:
    message = encode_touchpoint(
        kind="track", message_id="m-1", contact="u-1", user_id="u-1", anonymous_id=None,
        previous_id=None, group_id=None, event="Demo Requested", name=None, properties={},
        traits={}, context={}, timestamp="2026-11-23T08:00:00.000Z", original_timestamp=None,
        sent_at=None, received_at="2026-11-23T08:00:02.000Z", source_id="s-1",
    )
    assert list(message) == [
        "v", "type", "messageId", "contact", "userId", "anonymousId", "previousId", "groupId",
        "event", "name", "properties", "traits", "context", "timestamp", "originalTimestamp",
        "sentAt", "receivedAt", "sourceId",
    ]


FUNNEL = funnel()


@st.composite
def transitions(draw: st.DrawFn) -> tuple[Transition, Any, ContactState | None, str | None]:
    """(transition, journey, contact state after it, cause event) as the stager has them."""
    journey = draw(st.sampled_from([None, FUNNEL]))
    stage_ids = st.sampled_from(FUNNEL.stage_ids) if journey is not None else ids
    by_timer = draw(st.booleans())
    transition = Transition(
        transition_id=str(draw(st.uuids())),
        journey_id=journey.id if journey is not None else draw(ids),
        journey_version=draw(st.integers(0, 2**31)),
        contact=draw(ids),
        from_stage=draw(st.none() | stage_ids),
        to_stage=draw(stage_ids),
        at=draw(st.datetimes(timezones=st.just(UTC))),
        cause=timer_cause(draw(ids)) if by_timer else draw(ids.filter(
            lambda c: not c.startswith("timer:"))),
        rule_id=draw(optional_ids),
        reason=draw(st.text(max_size=20)),
    )
    touches = st.none() | st.builds(Touch, ids, instants)
    state = draw(st.none() | st.builds(
        ContactState, st.just(transition.journey_id), st.just(transition.journey_version),
        st.just(transition.contact), first_touch=touches, last_touch=touches,
        traits=json_objects))
    return transition, journey, state, None if by_timer else draw(optional_ids)


def published(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()  # as the stager's outbox


@settings(max_examples=200, deadline=None)
@given(transitions())
def test_a_transition_record_reads_back_as_the_stager_wrote_it(
    written: tuple[Transition, Any, ContactState | None, str | None]
) -> None:
    transition, journey, state, event = written
    message = encode_transition(transition, journey, state, event)
    record = decode_transition(published(message))
    assert record.transition == transition
    assert record.message == through_the_topic(message)  # the webhook body, as published
    assert message["v"] == TRANSITION_VERSION


def test_the_cause_is_spelled_out_on_the_wire_and_read_back_in_the_engines_form() -> None:
    transition = Transition("0b8f2f5e-8d3c-4c59-9b7e-1f1d2c3b4a59", "funnel", 1, "alice",
                            "customer", "at-risk", datetime(2026, 11, 2, tzinfo=UTC),
                            timer_cause("dormant"), "dormant", "30 days quiet")
    message = encode_transition(transition, FUNNEL, None, None)
    assert message["cause"] == {"kind": "timer", "rule": "dormant"}
    assert decode_transition(published(message)).transition.cause == "timer:dormant"
    by_event = encode_transition(replace(transition, cause="m-7"), FUNNEL, None,
                                 "Order Completed")
    assert by_event["cause"] == {"kind": "event", "message_id": "m-7",
                                 "event": "Order Completed"}


@settings(max_examples=100, deadline=None)
@given(transitions(), not_the_version)
def test_a_transition_record_of_another_version_is_malformed(
    written: tuple[Transition, Any, ContactState | None, str | None], version: Any
) -> None:
    message = {**encode_transition(*written), "v": version}
    with pytest.raises(MalformedTransition) as error:
        decode_transition(published(message))
    assert error.value.reason == "invalid_field" and error.value.error.startswith("v: ")
    del message["v"]
    with pytest.raises(MalformedTransition, match="v: must be 1, got None"):
        decode_transition(published(message))


dead_letters = st.builds(
    DeadLetter, st.none() | st.binary(max_size=20), st.none() | st.binary(max_size=40),
    st.text(min_size=1, max_size=30), st.integers(0, 10_000), st.integers(0, 2**62),
    st.sampled_from(["invalid_json", "invalid_field", "processing_failed", "database_rejected"]),
    st.text(max_size=60),
)


@settings(max_examples=200, deadline=None)
@given(dead_letters)
def test_a_dead_letter_reads_back_from_its_headers_in_either_log(letter: DeadLetter) -> None:
    headers = letter.headers()
    assert set(headers) == {"polku.source.topic", "polku.source.partition",
                            "polku.source.offset", "polku.error.reason", "polku.error"}
    # The embedded log keeps headers as text; Kafka hands them back as (name, bytes) pairs.
    assert DeadLetter.from_record(letter.key, letter.value, headers) == letter
    kafka_headers = [(name, text.encode()) for name, text in headers.items()]
    assert DeadLetter.from_record(letter.key, letter.value, kafka_headers) == letter


def test_a_record_without_the_dead_letter_headers_is_not_read_as_one() -> None:
    with pytest.raises(ValueError, match=r"no polku\.error\.reason header"):
        DeadLetter.from_record(b"k", b"v", {"polku.source.topic": "t",
                                            "polku.source.partition": "0",
                                            "polku.source.offset": "3"})


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.integers(1, 64))
def test_every_writer_puts_a_key_on_the_partition_kafkas_default_partitioner_chooses(
    key: bytes, partitions: int
) -> None:
    every = list(range(partitions))
    expected = DefaultPartitioner()(key, every, every)
    assert partition_for_key(key, partitions) == expected
    assert ContactHashes()(key) % partitions == expected  # ingest's cached hash
    assert key_hash(key) >= 0


def test_kafka_settings_name_the_topics() -> None:
    assert KafkaSettings().topics == Topics()
    named = KafkaSettings(touchpoints_topic="a", transitions_topic="b", dead_letter_topic="c")
    assert named.topics == Topics(touchpoints="a", transitions="b", dead_letters="c")
