"""Folding a touchpoint into what a contact's state remembers, before any rule is evaluated.

Everything here is order-insensitive: first and last touch, traits (newest by event time),
counts and scores end up the same whatever order the same touchpoints arrive in.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from shared.journey.model.condition import Count
from shared.journey.model.journey import Journey
from shared.journey.model.state import SEEN_LIMIT, UNKNOWN, ContactState, ScoreTotal
from shared.journey.model.touchpoint import Touch, Touchpoint
from shared.journey.runtime.evaluation import decay


def observe(state: ContactState, touchpoint: Touchpoint, journey: Journey) -> ContactState:
    at = touchpoint.timestamp
    watermark = max(at, state.last_event_at) if state.last_event_at else at
    touch = touchpoint.touch
    first = state.first_touch
    last = state.last_touch
    traits, trait_times = _merge_traits(state, touchpoint.contact_traits, at)
    return state.evolve(
        last_event_at=watermark,
        first_touch=touch if first is None or at < first.at else first,
        last_touch=touch if last is None or at >= last.at else last,
        traits=traits,
        trait_times=trait_times,
        counts=_counts(state, touchpoint, journey, watermark),
        scores=_scores(state, touchpoint, journey),
        seen=(*state.seen, touchpoint.message_id)[-SEEN_LIMIT:],
        observed=state.observed + 1 if state.observed != UNKNOWN else UNKNOWN,
    )


def combine(journey: Journey, a: ContactState, b: ContactState) -> ContactState:
    """`a` with the evidence of both: what folding every touchpoint of both into one state
    would give, in any order (this module's invariant), without the touchpoints themselves.

    Stage, sequence and the rest of `a` stay as they are: only the stage depends on order.
    """
    watermark = max(t for t in (a.last_event_at, b.last_event_at) if t is not None) \
        if a.last_event_at or b.last_event_at else None
    traits = dict(a.traits)
    times = dict(a.trait_times)
    for name, at in b.trait_times.items():
        if name not in times or at > times[name]:
            traits[name] = b.traits.get(name)
            times[name] = at
    counts: dict[str, tuple[datetime, ...]] = {}
    for count in (compiled.count for compiled in journey.compiled.counts):
        both = (*a.counts.get(count.key, ()), *b.counts.get(count.key, ()))
        if both and watermark is not None:
            both = _bounded(both, count, watermark)
        if both:
            counts[count.key] = both
    scores: dict[str, ScoreTotal] = {}
    for score in (compiled.score for compiled in journey.compiled.scores):
        key = score.key
        total = a.scores.get(key)
        other = b.scores.get(key)
        if other is not None:
            total = _add(total, other.value, other.as_of, score.half_life)
        if total is not None:
            scores[key] = total
    return a.evolve(
        last_event_at=watermark,
        first_touch=_earliest(a.first_touch, b.first_touch),
        last_touch=_latest(a.last_touch, b.last_touch),
        traits=traits,
        trait_times=times,
        counts=counts,
        scores=scores,
        observed=(a.observed + b.observed if UNKNOWN not in (a.observed, b.observed)
                  else UNKNOWN),
    )


def _earliest(a: Touch | None, b: Touch | None) -> Touch | None:
    if a is None or b is None:
        return a or b
    return b if b.at < a.at else a


def _latest(a: Touch | None, b: Touch | None) -> Touch | None:
    if a is None or b is None:
        return a or b
    return b if b.at > a.at else a


def _merge_traits(
    state: ContactState, incoming: Mapping[str, Any], at: datetime
) -> tuple[Mapping[str, Any], Mapping[str, datetime]]:
    if not incoming:  # most touchpoints say nothing about the contact: nothing to copy
        return state.traits, state.trait_times
    traits = dict(state.traits)
    times = dict(state.trait_times)
    for name, value in incoming.items():
        # Newest by event time wins, so a late identify cannot overwrite a newer value.
        if name not in times or at >= times[name]:
            traits[name] = value
            times[name] = at
    return traits, times


def _counts(
    state: ContactState, touchpoint: Touchpoint, journey: Journey, watermark: datetime
) -> dict[str, tuple[datetime, ...]]:
    counts: dict[str, tuple[datetime, ...]] = {}
    for compiled in journey.compiled.counts:
        count = compiled.count
        times = state.counts.get(count.key, ())
        if compiled.matches(touchpoint):
            times = (*times, touchpoint.timestamp)
        if times:
            times = _bounded(times, count, watermark)
        # Only non-empty histories are stored; rules removed in a new version lose theirs here.
        if times:
            counts[count.key] = times
    return counts


def _bounded(
    times: tuple[datetime, ...], count: Count, watermark: datetime
) -> tuple[datetime, ...]:
    # The newest `at_least` times inside the window are all a count can ever need.
    if count.within is not None:
        horizon = watermark - count.within
        times = tuple(t for t in times if t > horizon)
    return tuple(sorted(times)[-count.at_least :])


def _scores(state: ContactState, touchpoint: Touchpoint, journey: Journey) -> dict[str, ScoreTotal]:
    scores: dict[str, ScoreTotal] = {}
    for compiled in journey.compiled.scores:
        score = compiled.score
        total = state.scores.get(score.key)
        points = sum(points for points, matches in compiled.weights if matches(touchpoint))
        if points:
            total = _add(total, points, touchpoint.timestamp, score.half_life)
        if total is not None:
            scores[score.key] = total
    return scores


def _add(
    total: ScoreTotal | None, points: float, at: datetime, half_life: timedelta | None
) -> ScoreTotal:
    if total is None:
        return ScoreTotal(float(points), at)
    if half_life is None:
        return ScoreTotal(total.value + points, max(total.as_of, at))
    # Keep the total valid at the newest event time; a late event is decayed to it instead.
    as_of = max(total.as_of, at)
    value = total.value * decay(as_of - total.as_of, half_life) + points * decay(
        as_of - at, half_life
    )
    return ScoreTotal(value, as_of)
