"""Conditions compiled once per journey into plain Python closures.

`holds` (evaluation.py) and `touchpoint_matches` (matching.py) interpret a condition tree: a
chain of isinstance tests and attribute look-ups at every node, for every touchpoint and every
journey. They stay the reference semantics. The engine instead evaluates closures built here
once per `Journey` object (a new journey version is a new object, so nothing can go stale);
`tests/unit/journey/test_compiled.py` checks that both always agree.

Leaf tests (a filter's operators, the count window, the score decay) reuse the reference
functions, so only the tree walk is compiled away, plus two precomputations per journey: the
rules that can apply from each stage, and each rule's transition reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

from shared.journey.model.condition import (
    AllOf,
    AnyOf,
    Condition,
    Count,
    EventMatch,
    Filter,
    InactiveFor,
    InStageFor,
    Not,
    Score,
    Traits,
)
from shared.journey.model.rule import Rule
from shared.journey.model.state import ContactState
from shared.journey.model.touchpoint import Touchpoint
from shared.journey.parsing.describe import describe
from shared.journey.runtime.evaluation import clock_nodes, count_at, quiet_since, score_at
from shared.journey.runtime.matching import lookup, passes

if TYPE_CHECKING:
    from shared.journey.model.journey import Journey

# (state, current touchpoint or None on a timer, now) -> does the condition hold?
Predicate: TypeAlias = Callable[[ContactState, Touchpoint | None, datetime], bool]
# touchpoint -> does it match? (event-level conditions: what counts and scores look at)
EventPredicate: TypeAlias = Callable[[Touchpoint], bool]
ValuesPredicate: TypeAlias = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    holds: Predicate
    reason: str  # the transition reason, e.g. "rule 'purchase': event 'Order Completed'"
    clock_nodes: tuple[Condition, ...]  # the parts of `when` that time alone can change


@dataclass(frozen=True)
class CompiledCount:
    count: Count
    matches: EventPredicate


@dataclass(frozen=True)
class CompiledScore:
    score: Score
    weights: tuple[tuple[float, EventPredicate], ...]  # (points, matches)


@dataclass(frozen=True)
class CompiledJourney:
    entry: Predicate | None
    rules: tuple[CompiledRule, ...]  # file order
    counts: tuple[CompiledCount, ...]
    scores: tuple[CompiledScore, ...]
    # Rules a contact in the stage may move by (admitted, and leading somewhere else), in file
    # order; for every stage of the journey. See `rules_from`.
    by_stage: Mapping[str, tuple[CompiledRule, ...]]
    timed_by_stage: Mapping[str, tuple[CompiledRule, ...]]

    def rules_from(self, stage: str) -> tuple[CompiledRule, ...]:
        found = self.by_stage.get(stage)
        return found if found is not None else _leaving(self.rules, stage)

    def timed_rules_from(self, stage: str) -> tuple[CompiledRule, ...]:
        found = self.timed_by_stage.get(stage)
        if found is not None:
            return found
        return tuple(r for r in _leaving(self.rules, stage) if r.rule.timed)


def compile_journey(journey: Journey) -> CompiledJourney:
    rules = tuple(
        CompiledRule(rule, compile_condition(rule.when), rule_reason(rule), clock_nodes(rule.when))
        for rule in journey.rules
    )
    counts, scores = [], []
    for accumulator in journey.accumulators:
        if isinstance(accumulator, Count):
            counts.append(CompiledCount(accumulator, compile_event_condition(accumulator.matching)))
        else:
            weights = tuple(
                (w.points, compile_event_condition(w.matching)) for w in accumulator.weights
            )
            scores.append(CompiledScore(accumulator, weights))
    from_stage = {stage: _leaving(rules, stage) for stage in journey.stage_ids}
    return CompiledJourney(
        entry=compile_condition(journey.entry) if journey.entry is not None else None,
        rules=rules,
        counts=tuple(counts),
        scores=tuple(scores),
        by_stage=from_stage,
        timed_by_stage={
            stage: tuple(r for r in found if r.rule.timed) for stage, found in from_stage.items()
        },
    )


def rule_reason(rule: Rule) -> str:
    return f"rule '{rule.id}': {rule.reason or describe(rule.when)}"


def _leaving(rules: tuple[CompiledRule, ...], stage: str) -> tuple[CompiledRule, ...]:
    return tuple(r for r in rules if r.rule.admits(stage) and r.rule.to != stage)


def compile_condition(condition: Condition) -> Predicate:
    """A closure equivalent to `holds(condition, state, touchpoint, now)`."""
    if isinstance(condition, EventMatch):
        matches = compile_event_match(condition)
        return lambda state, touchpoint, now: touchpoint is not None and matches(touchpoint)
    if isinstance(condition, Count):
        return _count(condition)
    if isinstance(condition, Score):
        return _score(condition)
    if isinstance(condition, InactiveFor):
        return _inactive_for(condition)
    if isinstance(condition, InStageFor):
        return _in_stage_for(condition)
    if isinstance(condition, Traits):
        traits_match = compile_filters(condition.filters)
        return lambda state, touchpoint, now: traits_match(state.traits)
    if isinstance(condition, AllOf):
        return _all_of(tuple(compile_condition(c) for c in condition.conditions))
    if isinstance(condition, AnyOf):
        return _any_of(tuple(compile_condition(c) for c in condition.conditions))
    inner = compile_condition(condition.condition)
    return lambda state, touchpoint, now: not inner(state, touchpoint, now)


def _count(count: Count) -> Predicate:
    key, within, at_least = count.key, count.within, count.at_least

    def holds(state: ContactState, touchpoint: Touchpoint | None, now: datetime) -> bool:
        return count_at(state.counts.get(key, ()), within, now) >= at_least

    return holds


def _score(score: Score) -> Predicate:
    key, half_life, at_least = score.key, score.half_life, score.at_least

    def holds(state: ContactState, touchpoint: Touchpoint | None, now: datetime) -> bool:
        return score_at(state.scores.get(key), half_life, now) >= at_least

    return holds


def _inactive_for(condition: InactiveFor) -> Predicate:
    duration = condition.duration

    def holds(state: ContactState, touchpoint: Touchpoint | None, now: datetime) -> bool:
        quiet = quiet_since(state)
        return quiet is not None and now - quiet >= duration

    return holds


def _in_stage_for(condition: InStageFor) -> Predicate:
    duration = condition.duration

    def holds(state: ContactState, touchpoint: Touchpoint | None, now: datetime) -> bool:
        entered = state.stage_entered_at
        return state.stage is not None and entered is not None and now - entered >= duration

    return holds


def _all_of(parts: tuple[Predicate, ...]) -> Predicate:
    def holds(state: ContactState, touchpoint: Touchpoint | None, now: datetime) -> bool:
        for part in parts:
            if not part(state, touchpoint, now):
                return False
        return True

    return holds


def _any_of(parts: tuple[Predicate, ...]) -> Predicate:
    def holds(state: ContactState, touchpoint: Touchpoint | None, now: datetime) -> bool:
        for part in parts:
            if part(state, touchpoint, now):
                return True
        return False

    return holds


def compile_event_condition(condition: Condition) -> EventPredicate:
    """A closure equivalent to `touchpoint_matches(condition, touchpoint)`."""
    if isinstance(condition, EventMatch):
        return compile_event_match(condition)
    if isinstance(condition, AllOf):
        return _all_true(tuple(compile_event_condition(c) for c in condition.conditions))
    if isinstance(condition, AnyOf):
        parts = tuple(compile_event_condition(c) for c in condition.conditions)
        return lambda touchpoint: any(part(touchpoint) for part in parts)
    if isinstance(condition, Not):
        inner = compile_event_condition(condition.condition)
        return lambda touchpoint: not inner(touchpoint)
    return lambda touchpoint: False  # not event-level; the parser does not allow it here


def compile_event_match(match: EventMatch) -> EventPredicate:
    """A closure equivalent to `event_matches(match, touchpoint)`: only the tests it names."""
    checks: list[EventPredicate] = []
    types, events, names, channels = match.types, match.events, match.names, match.channels
    if types:
        checks.append(lambda touchpoint: touchpoint.type in types)
    if events:
        checks.append(lambda touchpoint: touchpoint.event in events)
    if names:
        checks.append(lambda touchpoint: touchpoint.name in names)
    if channels:
        checks.append(lambda touchpoint: touchpoint.channel in channels)
    if match.properties:
        properties_match = compile_filters(match.properties)
        checks.append(lambda touchpoint: properties_match(touchpoint.properties))
    return _all_true(tuple(checks))


def _all_true(checks: tuple[EventPredicate, ...]) -> EventPredicate:
    if len(checks) == 1:
        return checks[0]

    def matches(touchpoint: Touchpoint) -> bool:
        for check in checks:
            if not check(touchpoint):
                return False
        return True

    return matches


def compile_filters(filters: tuple[Filter, ...]) -> ValuesPredicate:
    """A closure equivalent to `filters_match(filters, values)`."""
    compiled = tuple((f.path, f.tests) for f in filters)

    def match(values: Mapping[str, Any]) -> bool:
        for path, tests in compiled:
            actual = lookup(values, path)
            for test in tests:
                if not passes(test, actual):
                    return False
        return True

    return match
