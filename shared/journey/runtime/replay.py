"""Replaying touchpoints through a journey without any infrastructure ("what-if" runs).

Runs from wire messages (`polku simulate`) are shared.simulation: reading them is shared.wire's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from shared.journey.model.journey import Journey
from shared.journey.model.state import ContactState
from shared.journey.model.step import Step
from shared.journey.model.tick import TimerTick
from shared.journey.model.touchpoint import Touchpoint
from shared.journey.model.transition import Transition
from shared.journey.runtime.engine import advance
from shared.journey.runtime.timers import next_deadline


def replay(
    journey: Journey,
    ticks: Iterable[Touchpoint | TimerTick],
    state: ContactState | None = None,
) -> Step:
    """Advance one contact through `ticks` in order; the step holds every transition taken."""
    transitions: list[Transition] = []
    step = Step(state, (), next_deadline(state, journey))
    for tick in ticks:
        step = advance(step.state, tick, journey)
        transitions.extend(step.transitions)
    return Step(step.state, tuple(transitions), step.next_deadline)


def run_timers(journey: Journey, state: ContactState | None, until: datetime) -> Step:
    """Tick a contact's timers until nothing more is due at `until`."""
    transitions: list[Transition] = []
    step = advance(state, TimerTick(until), journey)
    transitions.extend(step.transitions)
    while step.transitions and step.next_deadline is not None and step.next_deadline <= until:
        step = advance(step.state, TimerTick(until), journey)
        transitions.extend(step.transitions)
    return Step(step.state, tuple(transitions), step.next_deadline)
