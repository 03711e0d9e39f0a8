"""Timer rules: which one is due for a contact, and when the next one could fire."""

from __future__ import annotations

from datetime import datetime

from shared.journey.model.journey import Journey
from shared.journey.model.state import ContactState
from shared.journey.runtime.compiled import CompiledRule
from shared.journey.runtime.evaluation import change_points


def due_timer(
    state: ContactState, journey: Journey, upto: datetime | None
) -> tuple[datetime, CompiledRule] | None:
    """The earliest instant (after the stage was entered, at or before `upto`) at which a timed
    rule admitted from the contact's stage holds, with the first such rule in file order.

    Only instants strictly after the stage entry count, so two timed rules pointing at each
    other cannot bounce a contact back and forth within one instant.
    """
    if state.stage is None or state.stage_entered_at is None:
        return None
    rules = journey.compiled.timed_rules_from(state.stage)
    if not rules:
        return None
    entered = state.stage_entered_at
    candidates = sorted(
        {
            point
            for rule in rules
            for point in change_points(rule.clock_nodes, state)
            if point > entered and (upto is None or point <= upto)
        }
    )
    for at in candidates:
        for rule in rules:
            if rule.holds(state, None, at):
                return at, rule
    return None


def fire_time(state: ContactState, due_at: datetime) -> datetime:
    """When a due timer transition is stamped: never before the contact's latest touchpoint.

    A deadline can only precede it when a new journey version adds a rule that is already
    overdue; stamping it later keeps every contact's timeline in order.
    """
    if state.last_event_at is not None and state.last_event_at > due_at:
        return state.last_event_at
    return due_at


def next_deadline(state: ContactState | None, journey: Journey) -> datetime | None:
    """When the stager should next tick this contact; None if no timer rule can fire."""
    if state is None:
        return None
    due = due_timer(state, journey, None)
    return fire_time(state, due[0]) if due else None
