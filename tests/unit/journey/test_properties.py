"""Properties that must hold for any sequence of touchpoints and timer ticks."""

from __future__ import annotations

import json
import math
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.journey import (
    ContactState,
    Journey,
    TimerTick,
    Touchpoint,
    Transition,
    advance,
    replay,
)
from shared.wire import decode_touchpoint

from .messages import FUNNEL, T0, journey, message

EXTRA_RULES = """
  - id: cto-demo
    to: selection
    when: {all: [{event: Demo Requested}, {traits: {persona: cto}}]}
  - id: engaged
    from: [learning]
    to: selection
    when: {count: {matching: {type: page}, at_least: 3, within: 7d}}
  - id: scored
    from: [awareness]
    to: learning
    when:
      score:
        weights:
          - {matching: {type: page}, points: 1}
          - {matching: {event: Webinar Attended}, points: 10}
        at_least: 12
        half_life: 3d
  - id: stale
    from: [selection]
    to: awareness
    when: {any: [{in_stage_for: 10d}, {all: [{inactive_for: 5d}, {not: {traits: {persona: cto}}}]}]}
"""
OPEN = journey(FUNNEL + EXTRA_RULES)
PERSONA = journey(
    FUNNEL.replace("id: funnel", "id: persona") + EXTRA_RULES + "entry: {traits: {persona: cto}}\n"
)
JOURNEYS = st.sampled_from([OPEN, PERSONA])

EVENTS = [
    "Order Completed",
    "Demo Requested",
    "Guide Downloaded",
    "Feature Used",
    "Webinar Attended",
]
MINUTES = st.integers(min_value=0, max_value=120 * 24 * 60)


@st.composite
def touchpoints(draw: st.DrawFn) -> Touchpoint:
    kind = draw(st.sampled_from(["track", "track", "page", "identify"]))
    when = T0 + timedelta(minutes=draw(MINUTES))
    message_id = f"m-{draw(st.integers(0, 10_000))}"
    if kind == "track":
        raw = message(
            "track", event=draw(st.sampled_from(EVENTS)), when=when, message_id=message_id
        )
    elif kind == "page":
        referrer = draw(st.sampled_from(["", "https://www.google.com/", "https://t.co/x"]))
        raw = message(
            "page", when=when, message_id=message_id, context={"page": {"referrer": referrer}}
        )
    else:
        persona = draw(st.sampled_from(["cto", "cmo"]))
        raw = message("identify", traits={"persona": persona}, when=when, message_id=message_id)
    return decode_touchpoint(raw)


def ticks() -> st.SearchStrategy[list[Touchpoint | TimerTick]]:
    timer = st.builds(lambda m: TimerTick(T0 + timedelta(minutes=m)), MINUTES)
    return st.lists(st.one_of(touchpoints(), touchpoints(), timer), max_size=40)


def stored(state: ContactState | None) -> ContactState | None:
    if state is None:
        return None
    return ContactState.from_json(json.loads(json.dumps(state.to_json())))


@settings(max_examples=150, deadline=None)
@given(JOURNEYS, ticks())
def test_replay_is_deterministic(
    definition: Journey, sequence: list[Touchpoint | TimerTick]
) -> None:
    assert replay(definition, sequence) == replay(definition, sequence)


@settings(max_examples=150, deadline=None)
@given(JOURNEYS, ticks(), st.data())
def test_replaying_a_prefix_storing_the_state_and_replaying_the_rest_equals_replaying_all(
    definition: Journey, sequence: list[Touchpoint | TimerTick], data: st.DataObject
) -> None:
    split = data.draw(st.integers(0, len(sequence)))
    whole = replay(definition, sequence)
    first = replay(definition, sequence[:split])
    rest = replay(definition, sequence[split:], stored(first.state))
    assert first.transitions + rest.transitions == whole.transitions
    assert rest.state == whole.state
    assert rest.next_deadline == whole.next_deadline


@settings(max_examples=150, deadline=None)
@given(JOURNEYS, ticks(), st.booleans())
def test_the_stored_form_reads_back_as_the_state_without_its_ring_of_message_ids(
    definition: Journey, sequence: list[Touchpoint | TimerTick], as_text: bool
) -> None:
    state = replay(definition, sequence).state
    if state is None:
        return
    # The column comes back as a dict (JSONB, SQLite's JSON) or as text (`state::text`).
    column = json.dumps(state.to_stored()) if as_text else json.loads(json.dumps(state.to_stored()))
    assert ContactState.from_stored(column) == state.evolve(seen=())


@settings(max_examples=150, deadline=None)
@given(JOURNEYS, ticks())
def test_the_stagers_fast_encoding_is_the_stored_form(
    definition: Journey, sequence: list[Touchpoint | TimerTick]
) -> None:
    state = replay(definition, sequence).state
    if state is None:
        return
    assert json.loads(state.stored_text()) == state.to_stored()
    assert ContactState.from_stored(state.stored_text()) == state.evolve(seen=())


@settings(max_examples=150, deadline=None)
@given(JOURNEYS, ticks(), st.data())
def test_a_redelivered_touchpoint_changes_nothing(
    definition: Journey, sequence: list[Touchpoint | TimerTick], data: st.DataObject
) -> None:
    delivered = [t for t in sequence if isinstance(t, Touchpoint)]
    if not delivered:
        return
    step = replay(definition, sequence)
    again = advance(step.state, data.draw(st.sampled_from(delivered)), definition)
    assert again.transitions == ()
    assert again.state == step.state


@settings(max_examples=150, deadline=None)
@given(JOURNEYS, ticks())
def test_every_transition_is_allowed_by_the_definition(
    definition: Journey, sequence: list[Touchpoint | TimerTick]
) -> None:
    transitions = replay(definition, sequence).transitions
    previous: Transition | None = None
    for transition in transitions:
        assert transition.to_stage in definition.stage_ids
        assert transition.to_stage != transition.from_stage
        assert transition.from_stage == (previous.to_stage if previous else None)
        if previous is not None:
            assert transition.at >= previous.at
        if transition.rule_id is None:
            assert transition.from_stage is None and transition.to_stage == definition.first_stage
        else:
            rule = definition.rule(transition.rule_id)
            assert rule is not None and rule.to == transition.to_stage
            if transition.from_stage is None:
                assert rule.from_stages is None
            else:
                assert rule.admits(transition.from_stage)
        previous = transition
    assert len({t.transition_id for t in transitions}) == len(transitions)


@settings(max_examples=100, deadline=None)
@given(JOURNEYS, ticks())
def test_the_next_deadline_is_when_a_tick_fires_and_idle_ticks_change_nothing(
    definition: Journey, sequence: list[Touchpoint | TimerTick]
) -> None:
    step = replay(definition, sequence)
    if step.next_deadline is not None:
        assert advance(step.state, TimerTick(step.next_deadline), definition).transitions
    if step.state is not None and step.state.last_event_at is not None:
        idle = advance(step.state, TimerTick(step.state.last_event_at), definition)
        if not idle.transitions:
            assert idle.state == step.state


@settings(max_examples=100, deadline=None)
@given(
    JOURNEYS, st.lists(touchpoints(), max_size=25, unique_by=lambda t: t.timestamp), st.randoms()
)
def test_what_the_state_remembers_does_not_depend_on_arrival_order(
    definition: Journey, delivered: list[Touchpoint], random: object
) -> None:
    unique = list({t.message_id: t for t in delivered}.values())
    shuffled = list(unique)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    a, b = replay(definition, unique).state, replay(definition, shuffled).state
    if a is None or b is None:
        assert a is b
        return
    assert (a.counts, a.traits, a.first_touch, a.last_touch, a.last_event_at) == (
        b.counts,
        b.traits,
        b.first_touch,
        b.last_touch,
        b.last_event_at,
    )
    assert a.scores.keys() == b.scores.keys()
    for key, total in a.scores.items():
        assert total.as_of == b.scores[key].as_of
        assert math.isclose(total.value, b.scores[key].value, rel_tol=1e-9, abs_tol=1e-12)


def test_traits_of_any_json_shape_encode_as_the_stored_form() -> None:
    state = ContactState("j", 1, "c", traits={
        "nested": {"a": [1, 2.5, None, True, "ä"]}, "big": 2**70, "empty": {},
    })
    # Beyond 64 bits orjson refuses; the slow path writes the same JSON.
    assert json.loads(state.stored_text()) == state.to_stored()
    assert ContactState.from_stored(state.stored_text()) == state


def test_a_fresh_state_is_the_blank_state_of_its_journey_and_contact() -> None:
    fresh = ContactState.fresh("j", 3, "c")
    assert fresh == ContactState("j", 3, "c")
    assert ContactState.fresh("j", 3, "d").contact == "d" and fresh.contact == "c"
