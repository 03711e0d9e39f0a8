"""What the engine remembers for the funnel: when a contact entered the journey and the stages
it reached, in the order it first reached them (docs/analytics.md); and what the stager derives
from them for its columns (`progress`)."""

from __future__ import annotations

from shared.db.read_model import progress
from shared.journey import ContactState, replay

from .messages import at, funnel, page, track

STAGES = ("awareness", "learning", "selection", "customer", "at-risk")


def test_a_contact_remembers_its_entry_and_each_stage_it_first_reached_in_that_order() -> None:
    step = replay(funnel(), [
        page(at(0)),  # enters: awareness
        track("Demo Requested", at(1)),  # awareness -> selection (skips learning)
        track("Guide Downloaded", at(2)),  # selection -> learning (back)
        track("Demo Requested", at(3)),  # learning -> selection (again)
        track("Order Completed", at(4)),  # -> customer
    ])

    state = step.state
    assert state is not None
    assert state.journey_entered_at == at(0)
    assert state.reached == ("awareness", "selection", "learning", "customer")
    # Any order: all but at-risk. In order: awareness, then learning; selection was first
    # reached before learning, so the contact stops there.
    assert progress(state.reached, STAGES) == (0b01111, 2)


def test_a_stored_state_keeps_them_and_an_old_one_knows_only_its_stage() -> None:
    state = replay(funnel(), [page(at(0)), track("Guide Downloaded", at(1))]).state
    assert state is not None

    again = ContactState.from_stored(state.to_stored())
    old = dict(state.to_stored())
    del old["reached"], old["journey_entered_at"]

    assert (again.reached, again.journey_entered_at) == (("awareness", "learning"), at(0))
    assert (ContactState.from_stored(old).reached,
            ContactState.from_stored(old).journey_entered_at) == (("learning",), None)


def test_in_order_progress_stops_at_the_first_stage_missing_or_first_reached_too_early() -> None:
    assert progress((), STAGES) == (0, 0)
    assert progress(("awareness", "learning", "selection"), STAGES) == (0b00111, 3)
    assert progress(("learning", "awareness"), STAGES) == (0b00011, 1)  # landed in learning
    assert progress(("selection",), STAGES) == (0b00100, 0)
    assert progress(("awareness", "selection", "learning", "selection"), STAGES)[1] == 2
    assert progress(("awareness", "retired-stage"), STAGES) == (0b00001, 1)
