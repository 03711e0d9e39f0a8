"""The journey state machine: one contact, one touchpoint or timer tick, one pure step.

Precedence (documented in docs/journeys.md):
1. A redelivered touchpoint (messageId already seen) changes nothing.
2. A stage retired by a new journey version is left for its replacement.
3. Timer rules due at or before the touchpoint's event time fire first, in time order, so the
   outcome does not depend on how punctually the stager ticked.
4. The touchpoint is folded into the state (touches, traits, counts, scores).
5. At most one rule fires per touchpoint: the first in file order whose `from` admits the
   current stage, whose `to` differs from it, and whose condition holds.
"""

from __future__ import annotations

from datetime import datetime

from shared.journey.model.errors import StateMismatch
from shared.journey.model.journey import Journey
from shared.journey.model.state import ContactState
from shared.journey.model.step import Step
from shared.journey.model.tick import TimerTick
from shared.journey.model.touchpoint import Touchpoint
from shared.journey.model.transition import Transition, timer_cause, transition_id
from shared.journey.runtime.evidence import observe
from shared.journey.runtime.timers import due_timer, fire_time, next_deadline

# Guards against rules with tiny durations chasing each other through a long gap; the step's
# next_deadline is then still due, so the stager ticks again and the chase resumes.
MAX_TIMER_TRANSITIONS = 100


def advance(state: ContactState | None, tick: Touchpoint | TimerTick, journey: Journey) -> Step:
    """Advance one contact of `journey` by a touchpoint or a timer tick (pure, deterministic)."""
    if isinstance(tick, TimerTick):
        return _on_timer(state, tick.at, journey)
    return _on_touchpoint(state, tick, journey)


def _on_timer(state: ContactState | None, at: datetime, journey: Journey) -> Step:
    if state is None:
        return Step(None)
    _check(state, journey, state.contact)
    state, migrated = _adopt(state, journey, at)
    state, fired = _fire_timers(state, journey, at)
    return Step(state, (*migrated, *fired), next_deadline(state, journey))


def _on_touchpoint(state: ContactState | None, touchpoint: Touchpoint, journey: Journey) -> Step:
    if state is None:
        state = ContactState.fresh(journey.id, journey.version, touchpoint.contact)
    _check(state, journey, touchpoint.contact)
    if touchpoint.message_id in state.seen:
        return Step(state, (), next_deadline(state, journey))
    state, migrated = _adopt(state, journey, touchpoint.timestamp)
    state, fired = _fire_timers(state, journey, touchpoint.timestamp)
    state = observe(state, touchpoint, journey)
    state, reacted = _react(state, touchpoint, journey)
    return Step(state, (*migrated, *fired, *reacted), next_deadline(state, journey))


def _check(state: ContactState, journey: Journey, contact: str) -> None:
    if state.journey_id != journey.id:
        raise StateMismatch(f"state of journey '{state.journey_id}' given to '{journey.id}'")
    if state.contact != contact:
        raise StateMismatch(f"state of contact '{state.contact}' given a tick for '{contact}'")


def _adopt(
    state: ContactState, journey: Journey, at: datetime
) -> tuple[ContactState, tuple[Transition, ...]]:
    """Bring a state written under another version of the journey up to this one."""
    if state.journey_version != journey.version:
        state = state.evolve(journey_version=journey.version)
    stage = state.stage
    if stage is None or stage in journey.stage_ids or stage not in journey.retired_stages:
        # A removed stage without a `retired_stages` entry stays as it is: nothing is guessed,
        # and rules without `from` can still move the contact on.
        return state, ()
    target = journey.retired_stages[stage]
    reason = f"stage '{stage}' was retired in version {journey.version}; moved to '{target}'"
    state, transition = _move(
        state,
        journey,
        target,
        _stamp(state, at),
        f"journey:{journey.id}@v{journey.version}",
        None,
        reason,
    )
    return state, (transition,)


def _fire_timers(
    state: ContactState, journey: Journey, upto: datetime
) -> tuple[ContactState, tuple[Transition, ...]]:
    fired: list[Transition] = []
    for _ in range(MAX_TIMER_TRANSITIONS):
        due = due_timer(state, journey, upto)
        if due is None:
            break
        due_at, rule = due
        state, transition = _move(
            state,
            journey,
            rule.rule.to,
            fire_time(state, due_at),
            timer_cause(rule.rule.id),
            rule.rule.id,
            rule.reason,
        )
        fired.append(transition)
    return state, tuple(fired)


def _react(
    state: ContactState, touchpoint: Touchpoint, journey: Journey
) -> tuple[ContactState, tuple[Transition, ...]]:
    compiled = journey.compiled
    now = state.last_event_at or touchpoint.timestamp
    at = _stamp(state, touchpoint.timestamp)
    cause = touchpoint.message_id
    if state.stage is None:
        if compiled.entry is not None and not compiled.entry(state, touchpoint, now):
            return state, ()
        landing = next(
            (
                r
                for r in compiled.rules
                if r.rule.from_stages is None and r.holds(state, touchpoint, now)
            ),
            None,
        )
        if landing is None:
            moved = _move(state, journey, journey.first_stage, at, cause, None,
                          "entered the journey")
        else:
            moved = _move(state, journey, landing.rule.to, at, cause, landing.rule.id,
                          f"entered the journey; {landing.reason}")
        return moved[0], (moved[1],)
    for candidate in compiled.rules_from(state.stage):
        if candidate.holds(state, touchpoint, now):
            rule = candidate.rule
            moved = _move(state, journey, rule.to, at, cause, rule.id, candidate.reason)
            return moved[0], (moved[1],)
    return state, ()


def _stamp(state: ContactState, at: datetime) -> datetime:
    # A late touchpoint cannot end the current stage before it began.
    entered = state.stage_entered_at
    return entered if entered is not None and entered > at else at


def _move(
    state: ContactState,
    journey: Journey,
    to: str,
    at: datetime,
    cause: str,
    rule_id: str | None,
    reason: str,
) -> tuple[ContactState, Transition]:
    sequence = state.sequence + 1
    transition = Transition(
        transition_id=transition_id(journey.id, state.contact, cause, sequence),
        journey_id=journey.id,
        journey_version=journey.version,
        contact=state.contact,
        from_stage=state.stage,
        to_stage=to,
        at=at,
        cause=cause,
        rule_id=rule_id,
        reason=reason,
    )
    reached = state.reached if to in state.reached else (*state.reached, to)
    # Entering now, or when it did; unknown for a state stored before entries were kept.
    entered = at if state.stage is None else state.journey_entered_at
    return state.evolve(stage=to, stage_entered_at=at, sequence=sequence, reached=reached,
                        journey_entered_at=entered), transition
