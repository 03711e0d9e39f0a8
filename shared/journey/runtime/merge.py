"""Merging an id's history into a contact: the state they would have had as one contact.

When an anonymous visitor identifies, the stager hands this the known contact's state and
journal (the touchpoints it kept of it) and the same of the id being merged in, per journey.
The answer is the contact's new state and, when its stage changes, one transition with a merge
cause (docs/identity.md):

- Both journals complete (each holds every touchpoint its state has folded in): the contact
  is recomputed, replaying all touchpoints of both in event-time order (ties by messageId) from
  an empty state. Exactly what the engine gives had they been one contact from the start.
- Otherwise (history older than the journal's retention, or a journey added since): the
  contact's state goes on through the other id's kept touchpoints as if they had arrived late,
  and its evidence (counts, scores, traits, first and last touch) is combined with the other
  state's, which is exact because evidence does not depend on order (runtime/evidence.py).
  Only the stage may then differ from a full recomputation.

Either way the timers are then brought up to `until`, as the stager's timer sweep would, so a
merge does not undo a timer's move only for the next sweep to make it again. The new stage is
announced once, from the stage downstream last heard of: moves already sent are not replayed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from shared.journey.model.journey import Journey
from shared.journey.model.state import ContactState
from shared.journey.model.step import Step
from shared.journey.model.touchpoint import Touchpoint
from shared.journey.model.transition import Transition, merge_cause, transition_id
from shared.journey.runtime.evidence import combine
from shared.journey.runtime.replay import replay, run_timers
from shared.journey.runtime.timers import next_deadline


@dataclass(frozen=True)
class History:
    """What is known of one id in one journey: its state, and the touchpoints kept of the id."""

    state: ContactState | None
    journal: Sequence[Touchpoint]

    @property
    def complete(self) -> bool:
        """The journal holds every touchpoint the state has folded in (and a state stored
        before touchpoints were counted never is)."""
        return (self.state.observed if self.state is not None else 0) == len(self.journal)


def in_event_order(touchpoints: Iterable[Touchpoint], contact: str) -> list[Touchpoint]:
    """`touchpoints` as `contact`'s, by event time then messageId, each messageId once."""
    unique: dict[str, Touchpoint] = {}
    for tp in touchpoints:
        unique.setdefault(tp.message_id,
                          tp if tp.contact == contact else replace(tp, contact=contact))
    return sorted(unique.values(), key=lambda tp: (tp.timestamp, tp.message_id))


def merge(
    journey: Journey,
    kept: History,
    merged: History,
    contact: str,
    merged_id: str,
    until: datetime | None,
) -> Step:
    """`contact`'s state in `journey` once `merged` (the history of `merged_id`) is its own."""
    if kept.state is None and merged.state is None:
        return Step(None)
    if kept.complete and merged.complete:
        ordered = in_event_order((*kept.journal, *merged.journal), contact)
        state = replay(journey, ordered).state
    else:
        state = _bounded(journey, kept, merged, contact)
    if state is not None and until is not None:
        state = run_timers(journey, state, until).state
    if state is None:
        return Step(None)
    return _announce(journey, kept.state, state, merged_id)


def _bounded(journey: Journey, kept: History, merged: History, contact: str) -> ContactState:
    other_state = _renamed(merged.state, contact)
    if kept.state is None:
        assert other_state is not None
        return replay(journey, in_event_order(kept.journal, contact), other_state).state \
            or other_state
    moved = replay(journey, in_event_order(merged.journal, contact), kept.state).state
    assert moved is not None
    if other_state is None:
        return moved
    evidence = combine(journey, kept.state, other_state)
    return moved.evolve(
        last_event_at=evidence.last_event_at,
        first_touch=evidence.first_touch,
        last_touch=evidence.last_touch,
        traits=evidence.traits,
        trait_times=evidence.trait_times,
        counts=evidence.counts,
        scores=evidence.scores,
        observed=evidence.observed,
        # What each path reached, and the earlier entry: the funnel counts the person once.
        reached=(*moved.reached, *(s for s in other_state.reached if s not in moved.reached)),
        journey_entered_at=min((t for t in (moved.journey_entered_at,
                                            other_state.journey_entered_at) if t is not None),
                               default=None),
    )


def _renamed(state: ContactState | None, contact: str) -> ContactState | None:
    return state.evolve(contact=contact) if state is not None else None


def _announce(
    journey: Journey, before: ContactState | None, after: ContactState, merged_id: str
) -> Step:
    """The merged state, numbered on from `before`, and the one transition its stage needs."""
    sequence = before.sequence if before is not None else 0
    from_stage = before.stage if before is not None else None
    if after.stage is None or after.stage == from_stage:
        state = after.evolve(sequence=sequence)
        return Step(state, (), next_deadline(state, journey))
    sequence += 1
    at = after.stage_entered_at
    assert at is not None
    # The move is news now: it cannot end the stage downstream knew before that stage began.
    if before is not None and before.stage_entered_at is not None:
        at = max(at, before.stage_entered_at)
    cause = merge_cause(merged_id)
    transition = Transition(
        transition_id=transition_id(journey.id, after.contact, cause, sequence),
        journey_id=journey.id,
        journey_version=journey.version,
        contact=after.contact,
        from_stage=from_stage,
        to_stage=after.stage,
        at=at,
        cause=cause,
        rule_id=None,
        reason="another id of the contact was merged in; its stage was recomputed from both "
               "histories",
    )
    state = after.evolve(sequence=sequence)
    return Step(state, (transition,), next_deadline(state, journey))
