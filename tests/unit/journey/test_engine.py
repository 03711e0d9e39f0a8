"""Specification of the journey state machine: entry, precedence, timers, replay, versions."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.journey import (
    ContactState,
    StateMismatch,
    Step,
    TimerTick,
    advance,
    next_deadline,
    replay,
)
from shared.journey.model.transition import transition_id
from shared.journey.runtime.engine import MAX_TIMER_TRANSITIONS

from .messages import FUNNEL, at, funnel, identify, journey, page, track


def path(step: Step) -> list[tuple[str | None, str]]:
    return [(t.from_stage, t.to_stage) for t in step.transitions]


# --- entering -------------------------------------------------------------------------------


def test_without_an_entry_condition_any_touchpoint_enters_the_first_stage() -> None:
    step = advance(None, page(), funnel())
    assert path(step) == [(None, "awareness")]
    assert step.state is not None and step.state.stage == "awareness"
    assert step.transitions[0].reason == "entered the journey"


def test_an_entering_contact_lands_where_a_rule_without_from_sends_it() -> None:
    step = advance(None, track("Order Completed"), funnel())
    assert path(step) == [(None, "customer")]
    assert step.transitions[0].rule_id == "bought"


def test_contacts_not_matching_entry_stay_out_until_they_do() -> None:
    cto_only = journey(FUNNEL + "entry: {traits: {persona: cto}}\n")
    outside = replay(cto_only, [page(), track("Demo Requested", at(1))])
    assert outside.transitions == ()
    assert outside.state is not None and outside.state.stage is None
    entered = replay(cto_only, [identify({"persona": "cto"}, at(2))], outside.state)
    assert path(entered) == [(None, "awareness")]


# --- precedence -----------------------------------------------------------------------------


def test_rules_apply_in_file_order_and_may_skip_stages() -> None:
    # Both 'demo' and 'reading' match; 'demo' comes first, so learning is skipped.
    step = replay(funnel(), [page(), track("Demo Requested", at(1))])
    assert path(step) == [(None, "awareness"), ("awareness", "selection")]
    assert step.transitions[-1].rule_id == "demo"


def test_contacts_can_move_back() -> None:
    step = replay(
        funnel(), [page(), track("Demo Requested", at(1)), track("Guide Downloaded", at(2))]
    )
    assert path(step)[-1] == ("selection", "learning")


def test_a_rule_whose_target_is_the_current_stage_is_passed_over() -> None:
    step = replay(funnel(), [track("Order Completed"), track("Order Completed", at(1))])
    assert path(step) == [(None, "customer")]


def test_at_most_one_rule_fires_per_touchpoint() -> None:
    step = replay(funnel(), [page(), track("Guide Downloaded", at(1))])
    # From learning, 'demo' would also fire on the next touchpoint, but not on this one.
    assert path(step) == [(None, "awareness"), ("awareness", "learning")]


# --- transitions ----------------------------------------------------------------------------


def test_transitions_record_cause_rule_reason_and_event_time() -> None:
    demo = track("Demo Requested", at(1), message_id="m-demo")
    step = replay(funnel(), [page(message_id="m-first"), demo])
    entered, moved = step.transitions
    assert (entered.cause, moved.cause) == ("m-first", "m-demo")
    assert moved.at == at(1)
    assert moved.rule_id == "demo"
    assert moved.reason == "rule 'demo': event 'Demo Requested'"
    assert (moved.journey_id, moved.journey_version, moved.contact) == ("funnel", 1, "alice")


def test_replaying_the_same_touchpoints_yields_the_same_transition_ids() -> None:
    ticks = [page(message_id="a"), track("Demo Requested", at(1), message_id="b")]
    first = replay(funnel(), ticks)
    second = replay(funnel(), ticks)
    assert [t.transition_id for t in first.transitions] == [
        t.transition_id for t in second.transitions
    ]
    assert len({t.transition_id for t in first.transitions}) == 2


def test_a_redelivered_touchpoint_changes_nothing() -> None:
    demo = track("Demo Requested", at(1))
    before = replay(funnel(), [page(), demo])
    again = advance(before.state, demo, funnel())
    assert again.transitions == ()
    assert again.state == before.state


# --- timers ---------------------------------------------------------------------------------


def test_a_contact_inactive_for_30_days_moves_to_at_risk_and_fires_once() -> None:
    bought = replay(funnel(), [track("Order Completed")])
    assert bought.next_deadline == at(30)
    first = advance(bought.state, TimerTick(at(31)), funnel())
    assert path(first) == [("customer", "at-risk")]
    assert first.transitions[0].at == at(30)
    assert first.transitions[0].cause == "timer:went-quiet"
    later = replay(funnel(), [TimerTick(at(32)), TimerTick(at(90))], first.state)
    assert later.transitions == ()
    assert first.next_deadline is None


def test_a_timer_tick_before_the_deadline_changes_nothing() -> None:
    bought = replay(funnel(), [track("Order Completed")])
    early = advance(bought.state, TimerTick(at(29)), funnel())
    assert early.transitions == () and early.state == bought.state


def test_overdue_timers_fire_before_a_later_touchpoint_even_if_the_stager_never_ticked() -> None:
    step = replay(funnel(), [track("Order Completed"), track("Feature Used", at(40))])
    assert path(step) == [(None, "customer"), ("customer", "at-risk"), ("at-risk", "customer")]
    assert [t.at for t in step.transitions] == [at(0), at(30), at(40)]


def test_activity_pushes_the_inactivity_deadline_back() -> None:
    step = replay(funnel(), [track("Order Completed"), page(at(10))])
    assert step.next_deadline == at(40)


def test_no_deadline_when_no_timer_rule_applies_in_the_stage() -> None:
    assert replay(funnel(), [page()]).next_deadline is None
    assert next_deadline(None, funnel()) is None


def test_ticking_a_contact_the_journey_has_never_seen_does_nothing() -> None:
    assert advance(None, TimerTick(at(1)), funnel()) == Step(None)


def test_timer_rules_pointing_at_each_other_do_not_bounce_within_one_instant() -> None:
    ping_pong = journey(
        """
        id: ping-pong
        version: 1
        labels: {fi: P, en: P}
        stages:
          - {id: a, labels: {fi: A, en: A}}
          - {id: b, labels: {fi: B, en: B}}
        rules:
          - {id: a-to-b, from: [a], to: b, when: {inactive_for: 30d}}
          - {id: b-to-a, from: [b], to: a, when: {inactive_for: 30d}}
        """
    )
    step = replay(ping_pong, [page(), TimerTick(at(75))])
    assert [t.at for t in step.transitions[1:]] == [at(30), at(60)]


def test_timers_chasing_each_other_are_capped_per_step_and_resume_on_the_next_tick() -> None:
    chase = journey(
        """
        id: chase
        version: 1
        labels: {fi: C, en: C}
        stages:
          - {id: a, labels: {fi: A, en: A}}
          - {id: b, labels: {fi: B, en: B}}
        rules:
          - {id: a-to-b, from: [a], to: b, when: {in_stage_for: 1m}}
          - {id: b-to-a, from: [b], to: a, when: {in_stage_for: 1m}}
        """
    )
    entered = advance(None, page(), chase)
    step = advance(entered.state, TimerTick(at(1)), chase)
    assert len(step.transitions) == MAX_TIMER_TRANSITIONS
    assert step.next_deadline is not None and step.next_deadline <= at(1)


# --- state ----------------------------------------------------------------------------------


def test_state_round_trips_through_json() -> None:
    rich = journey(
        FUNNEL
        + """
  - id: engaged
    from: [learning]
    to: selection
    when:
      any:
        - count: {matching: {type: page}, at_least: 3, within: 7d}
        - score: {weights: [{points: 1.5}], at_least: 10, half_life: 3d}
"""
    )
    ticks = [
        identify({"persona": "cto", "tags": ["a"], "nested": {"x": 1}}),
        page(at(1), context={"page": {"referrer": "https://www.google.com/"}}),
        track("Guide Downloaded", at(2)),
        page(at(3)),
    ]
    state = replay(rich, ticks).state
    assert state is not None
    stored = json.loads(json.dumps(state.to_json()))
    assert ContactState.from_json(stored) == state
    assert state.first_touch is not None and state.first_touch.channel == "direct"
    assert state.last_touch is not None and state.last_touch.at == at(3)


def test_the_set_of_seen_message_ids_is_bounded() -> None:
    state = replay(funnel(), [page(at(0, minutes=i)) for i in range(300)]).state
    assert state is not None and len(state.seen) == 256


def test_a_state_given_to_the_wrong_journey_or_contact_is_refused() -> None:
    state = replay(funnel(), [page()]).state
    assert state is not None
    with pytest.raises(StateMismatch):
        advance(replace(state, journey_id="other"), page(at(1)), funnel())
    with pytest.raises(StateMismatch):
        advance(state, page(at(1), contact="bob"), funnel())


# --- out of order ---------------------------------------------------------------------------


def test_counts_scores_and_first_touch_do_not_depend_on_arrival_order() -> None:
    brand = journey(
        FUNNEL.replace(
            "  - id: bought",
            "  - id: seven\n    from: [awareness]\n    to: learning\n"
            "    when: {count: {at_least: 3, within: 30d}}\n  - id: bought",
        )
    )
    searched = page(at(1), context={"page": {"referrer": "https://www.bing.com/"}})
    in_order = replay(brand, [searched, page(at(2)), page(at(3))])
    shuffled = replay(brand, [page(at(3)), searched, page(at(2))])
    assert in_order.state is not None and shuffled.state is not None
    assert in_order.state.stage == shuffled.state.stage == "learning"
    assert in_order.state.counts == shuffled.state.counts
    assert in_order.state.first_touch == shuffled.state.first_touch
    assert shuffled.state.first_touch is not None
    assert shuffled.state.first_touch.channel == "search"


def test_a_late_touchpoint_is_stamped_no_earlier_than_the_current_stage_began() -> None:
    step = replay(funnel(), [page(at(5)), track("Demo Requested", at(1))])
    assert step.transitions[-1].at == at(5)


def test_event_rules_depend_on_arrival_order() -> None:
    in_order = replay(
        funnel(), [page(), track("Demo Requested", at(1)), track("Guide Downloaded", at(2))]
    )
    reversed_ = replay(
        funnel(), [page(), track("Guide Downloaded", at(2)), track("Demo Requested", at(1))]
    )
    assert in_order.state is not None and reversed_.state is not None
    assert (in_order.state.stage, reversed_.state.stage) == ("learning", "selection")


# --- versions -------------------------------------------------------------------------------


def test_a_new_version_keeps_contacts_in_their_stages() -> None:
    v1 = funnel()
    state = replay(v1, [page(), track("Demo Requested", at(1))]).state
    v2 = journey(FUNNEL.replace("version: 1", "version: 2"))
    step = advance(state, page(at(2)), v2)
    assert step.transitions == ()
    assert step.state is not None and step.state.stage == "selection"
    assert step.state.journey_version == 2


def test_contacts_in_a_retired_stage_move_to_its_replacement() -> None:
    state = replay(funnel(), [page(), track("Demo Requested", at(1))]).state
    v2 = journey(
        FUNNEL.replace("version: 1", "version: 2")
        .replace("  - {id: selection, labels: {fi: Valinta, en: Selection}}\n", "")
        .replace("to: selection", "to: customer")
        .replace("from: [selection]", "from: [customer]")
        + "retired_stages: {selection: learning}\n"
    )
    step = advance(state, TimerTick(at(2)), v2)
    assert path(step) == [("selection", "learning")]
    assert step.transitions[0].cause == "journey:funnel@v2"
    assert step.transitions[0].rule_id is None
    assert step.transitions[0].at == at(2)


def test_a_removed_stage_without_a_replacement_is_kept_and_rules_without_from_still_apply() -> None:
    state = replay(funnel(), [page(), track("Demo Requested", at(1))]).state
    v2 = journey(
        FUNNEL.replace("version: 1", "version: 2")
        .replace("  - {id: selection, labels: {fi: Valinta, en: Selection}}\n", "")
        .replace("to: selection", "to: customer")
        .replace("from: [selection]", "from: [customer]")
    )
    kept = advance(state, track("Demo Requested", at(2)), v2)
    assert kept.transitions == ()
    assert kept.state is not None and kept.state.stage == "selection"
    bought = advance(kept.state, track("Order Completed", at(3)), v2)
    assert path(bought) == [("selection", "customer")]


def test_a_rule_removed_in_a_new_version_drops_its_count_history() -> None:
    counting = journey(
        FUNNEL + "  - {id: busy, from: [learning], to: selection, when: {count: {at_least: 5}}}\n"
    )
    state = replay(counting, [page(), page(at(1))]).state
    assert state is not None and "busy/0" in state.counts
    after = advance(state, page(at(2)), journey(FUNNEL.replace("version: 1", "version: 2")))
    assert after.state is not None and after.state.counts == {}


def test_a_timer_rule_added_overdue_in_a_new_version_fires_at_the_next_tick() -> None:
    state = replay(funnel(), [page(), page(at(20))]).state
    v2 = journey(
        FUNNEL.replace("version: 1", "version: 2")
        + "  - {id: stale, from: [awareness], to: learning, when: {in_stage_for: 14d}}\n"
    )
    step = advance(state, TimerTick(at(21)), v2)
    assert path(step) == [("awareness", "learning")]
    assert step.transitions[0].at == at(20)
    assert step.transitions[0].journey_version == 2


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text(), st.text(), st.integers(min_value=0, max_value=10**9))
def test_transition_ids_are_the_rfc_4122_name_based_uuids_they_always_were(
    journey: str, contact: str, cause: str, sequence: int
) -> None:
    name = f"{journey}\x1f{contact}\x1f{cause}\x1f{sequence}"
    expected = str(uuid.uuid5(uuid.UUID("5b0e6c1e-7d1f-4c55-9c8a-6f6f6c6b7570"), name))
    assert transition_id(journey, contact, cause, sequence) == expected
