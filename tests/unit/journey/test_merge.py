"""Merging an id's history into a contact (shared/journey/runtime/merge.py), for any histories.

The definition (docs/identity.md): the contact's state is what the engine gives had every
touchpoint of both ids been one contact's, in event-time order. The stager's own path through
the database is tested the same way in tests/unit/stager/test_identity.py.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shared.journey import (
    ContactState,
    History,
    Journey,
    Touchpoint,
    in_event_order,
    merge,
    merged_id,
    replay,
    run_timers,
)

from .messages import T0
from .test_properties import JOURNEYS, stored, touchpoints

UNTIL = T0 + timedelta(days=200)


def histories() -> st.SearchStrategy[list[Touchpoint]]:
    return st.lists(touchpoints(), max_size=25)


def own(contact: str, tps: list[Touchpoint]) -> list[Touchpoint]:
    """The touchpoints as one id's, arriving in the drawn order (not event-time order), each
    messageId once, as the stager's journal keeps them."""
    return [replace(tp, contact=contact, message_id=f"{contact}-{i}") for i, tp in enumerate(tps)]


def lived(journey: Journey, tps: list[Touchpoint]) -> ContactState | None:
    """The id's state as the stager keeps it: its touchpoints in arrival order, then stored."""
    return stored(run_timers(journey, replay(journey, tps).state, UNTIL).state) if tps else None


def without_numbering(state: ContactState | None) -> ContactState | None:
    return state.evolve(sequence=0, seen=()) if state is not None else None


@settings(max_examples=200, deadline=None)
@given(JOURNEYS, histories(), histories())
def test_merging_complete_histories_equals_the_engine_on_all_touchpoints_in_event_order(
    journey: Journey, known: list[Touchpoint], anonymous: list[Touchpoint]
) -> None:
    known, anonymous = own("user", known), own("anon", anonymous)
    before = lived(journey, known)
    step = merge(journey, History(before, known), History(lived(journey, anonymous), anonymous),
                 "user", "anon", UNTIL)

    everything = in_event_order([*known, *anonymous], "user")
    expected = run_timers(journey, replay(journey, everything).state, UNTIL).state if everything \
        else None
    assert without_numbering(step.state) == without_numbering(expected)
    # One announcement per real change, numbered on from what downstream has seen.
    changed = step.state is not None and step.state.stage != (before.stage if before else None)
    assert len(step.transitions) == (1 if changed else 0)
    if step.transitions:
        (move,) = step.transitions
        assert (move.from_stage, move.to_stage) == (before.stage if before else None,
                                                    step.state.stage)
        assert merged_id(move.cause) == "anon"
        assert step.state.sequence == (before.sequence if before else 0) + 1


@settings(max_examples=200, deadline=None)
@given(JOURNEYS, histories(), histories(), st.data())
def test_with_history_beyond_the_journal_the_evidence_is_still_exact(
    journey: Journey, known: list[Touchpoint], anonymous: list[Touchpoint], data: st.DataObject
) -> None:
    """Counts, scores, traits and touches do not depend on order, so a merge gets them right
    even when the journal lost the oldest touchpoints; only the stage may then differ.
    (Touchpoints at the very same instant are a tie that only their order breaks: which of them
    is the first touch, or whose trait value is newest. The property draws distinct times.)"""
    times = [tp.timestamp for tp in (*known, *anonymous)]
    assume(len(set(times)) == len(times))
    known, anonymous = own("user", known), own("anon", anonymous)
    purged = data.draw(st.integers(0, len(anonymous)))
    kept_journal = sorted(anonymous, key=lambda tp: tp.timestamp)[purged:]
    step = merge(journey, History(lived(journey, known), known),
                 History(lived(journey, anonymous), kept_journal), "user", "anon", None)

    everything = in_event_order([*known, *anonymous], "user")
    full = replay(journey, everything).state if everything else None
    if full is None:
        assert step.state is None
        return
    got = step.state
    assert got is not None
    assert got.first_touch == full.first_touch
    assert got.last_touch is not None and full.last_touch is not None
    assert got.last_touch.at == full.last_touch.at
    assert got.last_event_at == full.last_event_at
    assert got.counts == full.counts
    assert got.traits == full.traits
    assert got.scores.keys() == full.scores.keys()
    for key, total in full.scores.items():
        assert got.scores[key].as_of == total.as_of
        assert math.isclose(got.scores[key].value, total.value, rel_tol=1e-9, abs_tol=1e-9)
    assert got.observed == len(known) + len(anonymous)
