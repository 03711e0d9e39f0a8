"""Turns a partition's records into engine steps: parse, dedupe within the batch, advance.

Pure apart from metrics: the store decides what is new and persists what this returns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

import orjson

from shared.db.read_model import first_channel
from shared.journey import (
    ContactState,
    InvalidTouchpoint,
    Journey,
    Step,
    TimerTick,
    Touchpoint,
    Transition,
    advance,
)
from shared.wire import decode_touchpoint


@dataclass(frozen=True)
class Record:
    """The parts of a Kafka record the stager needs."""

    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class DeadLetter:
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str  # a short, label-safe code: invalid_json, invalid_field
    error: str  # which field and what is wrong with it; never the payload itself


MessageKey = tuple[str, str]  # (contact, messageId)


class Parsed(NamedTuple):
    touchpoints: list[Touchpoint]  # valid ones, in offset order
    values: dict[MessageKey, bytes]  # each touchpoint's message as read (the first, if repeated)
    dead: list[DeadLetter]  # the records that must go to the dead-letter topic


def parse(records: Iterable[Record]) -> Parsed:
    """The valid touchpoints of `records` and the records to set aside."""
    touchpoints: list[Touchpoint] = []
    values: dict[MessageKey, bytes] = {}
    dead: list[DeadLetter] = []
    for record in records:
        try:
            message = _loads(record.value) if record.value is not None else None
        except ValueError as exc:  # includes UnicodeDecodeError
            dead.append(DeadLetter(record.offset, record.key, record.value, "invalid_json",
                                   f"value is not UTF-8 JSON ({type(exc).__name__})"))
            continue
        try:
            touchpoint = decode_touchpoint(message)
        except InvalidTouchpoint as exc:
            dead.append(DeadLetter(record.offset, record.key, record.value, "invalid_field",
                                   f"{exc.field}: {exc.problem}"))
            continue
        assert record.value is not None  # it decoded
        touchpoints.append(touchpoint)
        values.setdefault((touchpoint.contact, touchpoint.message_id), record.value)
    return Parsed(touchpoints, values, dead)


def _loads(value: bytes) -> object:
    """JSON as `json.loads` reads it, through orjson where orjson agrees (nearly always)."""
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:  # NaN, Infinity, numbers beyond a double: json reads them
        return json.loads(value)


StateKey = tuple[str, str]  # (journey id, contact)


@dataclass
class Changes:
    """What one batch or timer sweep did to the contact states it touched."""

    states: dict[StateKey, Step] = field(default_factory=dict)
    transitions: list[tuple[Transition, int]] = field(default_factory=list)  # with sequence
    # (journey, stage, seconds spent) for each stage a contact left, for the histogram.
    stage_durations: list[tuple[str, str, float]] = field(default_factory=list)
    # The same seconds by transition id, stored on the transition (docs/analytics.md).
    from_seconds: dict[str, float] = field(default_factory=dict)
    # Contacts whose journey entry or first-touch channel changed (a merge, a late touchpoint
    # older than their first): their earlier transitions repeat them, so they are rewritten.
    restamped: set[StateKey] = field(default_factory=set)
    # The contact's state right after the step that made each transition (by transition id):
    # its record carries the traits and touches of that moment, not of the batch's end.
    state_after: dict[str, ContactState | None] = field(default_factory=dict)

    def extend(self, other: Changes) -> None:
        """Add what a later part of the same batch did (its states replace earlier ones)."""
        self.states.update(other.states)
        self.transitions.extend(other.transitions)
        self.stage_durations.extend(other.stage_durations)
        self.from_seconds.update(other.from_seconds)
        self.restamped |= other.restamped
        self.state_after.update(other.state_after)

    def record(self, key: StateKey, before: ContactState | None, step: Step) -> None:
        self.states[key] = step
        base = before.sequence if before is not None else 0
        entered_at = before.stage_entered_at if before is not None else None
        for i, transition in enumerate(step.transitions, start=1):
            self.transitions.append((transition, base + i))
            self.state_after[transition.transition_id] = step.state
            if transition.from_stage is not None and entered_at is not None:
                seconds = (transition.at - entered_at).total_seconds()
                self.stage_durations.append((transition.journey_id, transition.from_stage,
                                             seconds))
                self.from_seconds[transition.transition_id] = seconds
            entered_at = transition.at
        after = step.state
        if (before is not None and before.stage is not None and after is not None
                and (before.journey_entered_at != after.journey_entered_at
                     or first_channel(before) != first_channel(after))):
            self.restamped.add(key)


def apply_touchpoints(
    states: Mapping[StateKey, ContactState],
    touchpoints: Sequence[Touchpoint],
    journeys: Sequence[Journey],
) -> Changes:
    """Advance every journey's state for each touchpoint, in order."""
    changes = Changes()
    current: dict[StateKey, ContactState | None] = dict(states)
    for touchpoint in touchpoints:
        for journey in journeys:
            key = (journey.id, touchpoint.contact)
            before = current.get(key)
            step = advance(before, touchpoint, journey)
            changes.record(key, before, step)
            current[key] = step.state
    return changes


def apply_timers(
    states: Mapping[StateKey, ContactState], journeys: Mapping[str, Journey], now: datetime
) -> tuple[Changes, list[StateKey]]:
    """Tick each state's timers up to `now`; also the states the engine could not tick.

    A state the engine raises on is left as it is (the caller stops asking for it until its
    next touchpoint), so one contact cannot stop the timers of its partition.
    """
    changes = Changes()
    failed: list[StateKey] = []
    tick = TimerTick(now)
    for key, before in states.items():
        journey = journeys.get(key[0])
        if journey is None:
            continue
        try:
            step = advance(before, tick, journey)
        except Exception:  # the engine is pure: no outage can come from it
            failed.append(key)
            continue
        changes.record(key, before, step)
    return changes, failed
