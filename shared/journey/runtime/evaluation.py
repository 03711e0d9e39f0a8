"""Deciding whether a condition holds for a contact at an instant, and when that can change."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta

from shared.journey.model.condition import (
    AllOf,
    AnyOf,
    Condition,
    Count,
    EventMatch,
    InactiveFor,
    InStageFor,
    Score,
    Traits,
    walk,
)
from shared.journey.model.state import ContactState, ScoreTotal
from shared.journey.model.touchpoint import Touchpoint
from shared.journey.runtime.matching import event_matches, filters_match

# Score crossings are computed in floating point; probing this much later lands safely past them.
_CROSSING_MARGIN = timedelta(milliseconds=1)


def holds(
    condition: Condition, state: ContactState, touchpoint: Touchpoint | None, now: datetime
) -> bool:
    """Whether `condition` holds at `now`; `touchpoint` is the current event (None on a timer)."""
    if isinstance(condition, EventMatch):
        return touchpoint is not None and event_matches(condition, touchpoint)
    if isinstance(condition, Count):
        return count_at(state.counts.get(condition.key, ()), condition.within, now) >= (
            condition.at_least
        )
    if isinstance(condition, Score):
        total = state.scores.get(condition.key)
        return score_at(total, condition.half_life, now) >= condition.at_least
    if isinstance(condition, InactiveFor):
        quiet = quiet_since(state)
        return quiet is not None and now - quiet >= condition.duration
    if isinstance(condition, InStageFor):
        entered = state.stage_entered_at
        return (
            state.stage is not None
            and entered is not None
            and (now - entered >= condition.duration)
        )
    if isinstance(condition, Traits):
        return filters_match(condition.filters, state.traits)
    if isinstance(condition, AllOf):
        return all(holds(c, state, touchpoint, now) for c in condition.conditions)
    if isinstance(condition, AnyOf):
        return any(holds(c, state, touchpoint, now) for c in condition.conditions)
    return not holds(condition.condition, state, touchpoint, now)


def quiet_since(state: ContactState) -> datetime | None:
    """Start of the current silence: the later of the last touchpoint and entering the stage.

    Counting from the stage entry too means a contact moved by a timer gets the full period in
    its new stage instead of falling straight through every inactivity rule at once.
    """
    if state.stage is None:
        return None
    moments = [t for t in (state.last_event_at, state.stage_entered_at) if t is not None]
    return max(moments) if moments else None


def count_at(times: tuple[datetime, ...], within: timedelta | None, now: datetime) -> int:
    """Events in the window (now - within, now]; the window is half-open so expiry is exact."""
    if within is None:
        return sum(1 for t in times if t <= now)
    return sum(1 for t in times if now - within < t <= now)


def score_at(total: ScoreTotal | None, half_life: timedelta | None, now: datetime) -> float:
    if total is None:
        return 0.0
    if half_life is None or now <= total.as_of:
        return total.value
    return total.value * decay(now - total.as_of, half_life)


def decay(elapsed: timedelta, half_life: timedelta) -> float:
    return float(0.5 ** (elapsed / half_life))


def clock_nodes(condition: Condition) -> tuple[Condition, ...]:
    """The parts of a condition whose truth can change as time passes, with no new touchpoint."""
    return tuple(
        node for node in walk(condition)
        if isinstance(node, InactiveFor | InStageFor)
        or (isinstance(node, Count) and node.within is not None)
        or (isinstance(node, Score) and node.half_life is not None)
    )


def change_points(nodes: Iterable[Condition], state: ContactState) -> set[datetime]:
    """Instants at which a condition's truth can change with no new touchpoint, given its
    `clock_nodes` (worked out once per rule when the journey is compiled).

    Between two of these the condition is constant, so timers only need to look at them.
    """
    points: set[datetime] = set()
    for node in nodes:
        if isinstance(node, InactiveFor):
            quiet = quiet_since(state)
            if quiet is not None:
                points.add(quiet + node.duration)
        elif isinstance(node, InStageFor):
            if state.stage_entered_at is not None:
                points.add(state.stage_entered_at + node.duration)
        elif isinstance(node, Count) and node.within is not None:
            points.update(t + node.within for t in state.counts.get(node.key, ()))
        elif isinstance(node, Score) and node.half_life is not None:
            crossing = _score_crossing(state.scores.get(node.key), node)
            if crossing is not None:
                points.add(crossing)
    return points


def _score_crossing(total: ScoreTotal | None, score: Score) -> datetime | None:
    if total is None or score.half_life is None or score.at_least <= 0:
        return None
    if total.value < score.at_least:
        return None
    halvings = math.log2(total.value / score.at_least)
    return total.as_of + score.half_life * halvings + _CROSSING_MARGIN
