"""The transition record carries the contact's first and last touch, so a webhook that selects
`fields: [first_touch]` (the shipped b2b-cto journey's sales hand-off) receives it."""

from __future__ import annotations

import json
from pathlib import Path

from services.actions.deliveries import plan
from services.stager.processing import apply_touchpoints
from shared.journey import (
    ContactState,
    Journey,
    Touchpoint,
    Transition,
    advance,
    load_journey,
)
from shared.wire import TransitionRecord, decode_touchpoint
from shared.wire import encode_transition as transition_message
from tests.unit.journey.messages import at, message

ROOT = Path(__file__).resolve().parents[3]


def b2b_cto() -> Journey:
    return load_journey(ROOT / "journeys" / "b2b-cto.yaml", environ={})


def walk(journey: Journey, touchpoints: list[Touchpoint]
         ) -> tuple[ContactState, list[Transition]]:
    state: ContactState | None = None
    transitions: list[Transition] = []
    for touchpoint in touchpoints:
        step = advance(state, touchpoint, journey)
        state = step.state
        transitions.extend(step.transitions)
    assert state is not None
    return state, transitions


def cto_asks_for_a_demo() -> list[Touchpoint]:
    return [
        decode_touchpoint(message(
            "page", name="Pricing", when=at(0), traits={"persona": "cto", "email": "m@example.com"},
            context={"campaign": {"medium": "cpc", "source": "google"}})),
        decode_touchpoint(message(
            "identify", when=at(1), traits={"persona": "cto", "email": "m@example.com"})),
        decode_touchpoint(message(
            "track", event="Demo Requested", when=at(2),
            context={"page": {"referrer": "https://www.linkedin.com/feed/"}})),
    ]


def test_transition_record_carries_first_and_last_touch() -> None:
    journey = b2b_cto()
    state, transitions = walk(journey, cto_asks_for_a_demo())
    handoff = next(t for t in transitions if t.to_stage == "selection")

    record = transition_message(handoff, journey, state, "Demo Requested")

    assert record["first_touch"] == {"channel": "paid_search", "at": at(0).isoformat()}
    assert record["last_touch"] == {"channel": "social", "at": at(2).isoformat()}


def test_sales_handoff_webhook_with_fields_first_touch_receives_the_first_touch_channel() -> None:
    journey = b2b_cto()
    state, transitions = walk(journey, cto_asks_for_a_demo())
    handoff = next(t for t in transitions if t.to_stage == "selection")
    record = TransitionRecord(transition_message(handoff, journey, state, "Demo Requested"),
                              handoff)

    [delivery] = [d for d in plan(record, {journey.id: journey})
                  if d.url.endswith("/hooks/sales-handoff")]
    body = json.loads(delivery.payload)

    assert body["first_touch"]["channel"] == "paid_search"
    assert "last_touch" not in body  # not selected by the journey's `fields`


def test_without_a_contact_state_the_record_has_no_touches_rather_than_failing() -> None:
    journey = b2b_cto()
    _, transitions = walk(journey, cto_asks_for_a_demo())

    record = transition_message(transitions[-1], journey, None, None)

    assert record["first_touch"] is None and record["last_touch"] is None


def test_a_transition_carries_the_contact_as_it_was_then_not_at_the_end_of_the_batch() -> None:
    journey = b2b_cto()
    touchpoints = cto_asks_for_a_demo()
    later = decode_touchpoint(message(
        "identify", when=at(3), traits={"persona": "cto", "plan": "enterprise"}))
    changes = apply_touchpoints({}, [*touchpoints, later], [journey])
    handoff = next(t for t, _ in changes.transitions if t.to_stage == "selection")

    state = changes.state_after[handoff.transition_id]
    record = transition_message(handoff, journey, state, "Demo Requested")

    assert "plan" not in record["traits"]  # the identify came after the hand-off
    assert record["last_touch"]["at"] == at(2).isoformat()
    assert changes.states[(journey.id, handoff.contact)].state.traits["plan"] == "enterprise"
