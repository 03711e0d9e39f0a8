"""Compiled conditions (shared/journey/runtime/compiled.py) agree with the interpreted reference."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.journey import ContactState, ScoreTotal, Touchpoint
from shared.journey.model.condition import (
    AllOf,
    AnyOf,
    Condition,
    Count,
    EventMatch,
    Filter,
    InactiveFor,
    InStageFor,
    Not,
    Score,
    Traits,
    Weight,
)
from shared.journey.model.condition import (
    Test as OperatorTest,
)
from shared.journey.runtime.compiled import compile_condition, compile_event_condition
from shared.journey.runtime.evaluation import holds
from shared.journey.runtime.matching import touchpoint_matches
from shared.wire import decode_touchpoint

from .messages import FUNNEL, T0, journey, message

TIMES = st.builds(lambda m: T0 + timedelta(minutes=m), st.integers(0, 60 * 24 * 30))
DURATIONS = st.builds(lambda m: timedelta(minutes=m), st.integers(0, 60 * 24 * 20))
HALF_LIVES = st.builds(lambda m: timedelta(minutes=m), st.integers(1, 60 * 24 * 20))  # as parsed
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 3), st.sampled_from([0.0, 1.0, 2.5]),
    st.sampled_from(["pro", "free", "/products/x", "x"]),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3))
PATHS = st.sampled_from([("plan",), ("revenue",), ("plan", "tier"), ("path",)])
MAPPINGS = st.dictionaries(
    st.sampled_from(["plan", "revenue", "path", "plan.tier"]),
    st.one_of(VALUES, st.dictionaries(st.sampled_from(["tier"]), VALUES, max_size=1)),
    max_size=4,
)
EVENTS = ["Demo Requested", "Order Completed", "Feature Used"]
KEYS = st.sampled_from(["k1", "k2"])


def operator_tests(operator: str) -> st.SearchStrategy[OperatorTest]:
    expected: st.SearchStrategy[Any] = {
        "exists": st.booleans(),
        "equals": SCALARS,
        "in": st.lists(SCALARS, max_size=3).map(tuple),
        "contains": SCALARS,
    }.get(operator, st.one_of(st.integers(-2, 3), st.sampled_from([0.5, 2.5])))
    return expected.map(lambda value: OperatorTest(operator, value))


TESTS = st.sampled_from(
    ["equals", "in", "exists", "gt", "gte", "lt", "lte", "contains"]
).flatmap(operator_tests)
FILTERS = st.lists(
    st.builds(Filter, PATHS, st.lists(TESTS, min_size=1, max_size=2).map(tuple)), max_size=2
).map(tuple)


def options(values: list[str]) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(values), max_size=2, unique=True).map(tuple)


EVENT_MATCHES = st.builds(
    EventMatch,
    events=options(EVENTS),
    types=options(["track", "page", "identify"]),
    names=options(["Pricing", "Blog"]),
    channels=options(["direct", "paid_search", "search"]),
    properties=FILTERS,
)
EVENT_CONDITIONS = st.recursive(
    EVENT_MATCHES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda cs: AllOf(tuple(cs))),
        st.lists(inner, max_size=3).map(lambda cs: AnyOf(tuple(cs))),
        inner.map(Not),
    ),
    max_leaves=6,
)
LEAVES = st.one_of(
    EVENT_MATCHES,
    st.builds(Count, KEYS, EVENT_MATCHES, st.integers(0, 3), st.one_of(st.none(), DURATIONS)),
    st.builds(
        Score, KEYS, st.lists(st.builds(Weight, EVENT_MATCHES, st.just(1.0)), max_size=1)
        .map(tuple), st.sampled_from([0.0, 1.0, 5.0]), st.one_of(st.none(), HALF_LIVES),
    ),
    st.builds(InactiveFor, DURATIONS),
    st.builds(InStageFor, DURATIONS),
    st.builds(Traits, FILTERS),
)
CONDITIONS = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda cs: AllOf(tuple(cs))),
        st.lists(inner, max_size=3).map(lambda cs: AnyOf(tuple(cs))),
        inner.map(Not),
    ),
    max_leaves=8,
)


@st.composite
def touchpoints(draw: st.DrawFn) -> Touchpoint:
    kind = draw(st.sampled_from(["track", "page", "identify"]))
    medium = draw(st.sampled_from([None, "cpc", "organic"]))
    raw = message(
        kind,
        when=draw(TIMES),
        event=draw(st.sampled_from(EVENTS)) if kind == "track" else None,
        name=draw(st.sampled_from([None, "Pricing", "Blog"])),
        properties=draw(MAPPINGS),
        context={"campaign": {"medium": medium}} if medium else {},
    )
    return decode_touchpoint(raw)


@st.composite
def states(draw: st.DrawFn) -> ContactState:
    return ContactState(
        "funnel", 1, "alice",
        stage=draw(st.sampled_from([None, "awareness", "learning"])),
        stage_entered_at=draw(st.one_of(st.none(), TIMES)),
        last_event_at=draw(st.one_of(st.none(), TIMES)),
        traits=draw(MAPPINGS),
        counts=draw(st.dictionaries(KEYS, st.lists(TIMES, max_size=4).map(tuple))),
        scores=draw(st.dictionaries(
            KEYS, st.builds(ScoreTotal, st.sampled_from([0.5, 3.0, 12.0]), TIMES)
        )),
    )


@settings(max_examples=400, deadline=None)
@given(CONDITIONS, states(), st.one_of(st.none(), touchpoints()), TIMES)
def test_a_compiled_condition_holds_exactly_when_the_interpreted_one_does(
    condition: Condition, state: ContactState, touchpoint: Touchpoint | None, now: Any
) -> None:
    assert compile_condition(condition)(state, touchpoint, now) == holds(
        condition, state, touchpoint, now
    )


@settings(max_examples=400, deadline=None)
@given(EVENT_CONDITIONS, touchpoints())
def test_a_compiled_event_condition_matches_exactly_when_the_interpreted_one_does(
    condition: Condition, touchpoint: Touchpoint
) -> None:
    assert compile_event_condition(condition)(touchpoint) == touchpoint_matches(
        condition, touchpoint
    )


def test_rules_from_a_stage_are_the_admitted_ones_leading_elsewhere_in_file_order() -> None:
    definition = journey(FUNNEL)
    for stage in (*definition.stage_ids, "retired-stage"):
        expected = [r.id for r in definition.rules if r.admits(stage) and r.to != stage]
        assert [r.rule.id for r in definition.compiled.rules_from(stage)] == expected
        timed = [r.id for r in definition.rules
                 if r.timed and r.admits(stage) and r.to != stage]
        assert [r.rule.id for r in definition.compiled.timed_rules_from(stage)] == timed


@given(states(), TIMES, st.sampled_from([None, "learning"]), st.integers(0, 5))
def test_evolve_is_dataclasses_replace(
    state: ContactState, when: Any, stage: str | None, sequence: int
) -> None:
    original = replace(state)
    changes = {"stage": stage, "stage_entered_at": when, "sequence": sequence}
    evolved = state.evolve(**changes)
    assert evolved == replace(state, **changes)  # type: ignore[arg-type]
    assert state == original  # the source is left as it was


def test_evolve_rejects_unknown_fields_like_replace() -> None:
    with pytest.raises(TypeError):
        ContactState("j", 1, "c").evolve(stag="typo")
