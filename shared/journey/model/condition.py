"""The conditions a rule or a journey's entry can test, as an immutable tree."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeAlias

OPERATORS = ("equals", "in", "exists", "gt", "gte", "lt", "lte", "contains")


@dataclass(frozen=True)
class Test:
    """One operator applied to one value, e.g. `gte: 100`."""

    operator: str
    expected: Any


@dataclass(frozen=True)
class Filter:
    """All tests on one (dotted) path into properties or traits, e.g. `plan.tier: {in: [pro]}`."""

    path: tuple[str, ...]
    tests: tuple[Test, ...]


@dataclass(frozen=True)
class EventMatch:
    """The current touchpoint matches; an empty tuple means "any"."""

    events: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    properties: tuple[Filter, ...] = ()


@dataclass(frozen=True)
class Count:
    """At least `at_least` touchpoints matching `matching` within `within` (None = ever).

    `key` names the contact state's record of matching event times; the parser derives it from
    the rule id and the count's position in the rule, so the history survives version changes
    as long as the rule keeps its id.
    """

    key: str
    matching: Condition
    at_least: int
    within: timedelta | None = None


@dataclass(frozen=True)
class Weight:
    matching: Condition
    points: float


@dataclass(frozen=True)
class Score:
    """Sum of the points of matching touchpoints, optionally halving every `half_life`."""

    key: str
    weights: tuple[Weight, ...]
    at_least: float
    half_life: timedelta | None = None


@dataclass(frozen=True)
class InactiveFor:
    """No touchpoints for `duration`, counted from the last one or from entering the stage."""

    duration: timedelta


@dataclass(frozen=True)
class InStageFor:
    duration: timedelta


@dataclass(frozen=True)
class Traits:
    filters: tuple[Filter, ...]


@dataclass(frozen=True)
class AllOf:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    condition: Condition


Condition: TypeAlias = (
    EventMatch | Count | Score | InactiveFor | InStageFor | Traits | AllOf | AnyOf | Not
)
Accumulator: TypeAlias = Count | Score


def walk(condition: Condition) -> Iterator[Condition]:
    """Every node of a condition tree, parents before children (counts' `matching` excluded)."""
    yield condition
    if isinstance(condition, AllOf | AnyOf):
        for child in condition.conditions:
            yield from walk(child)
    elif isinstance(condition, Not):
        yield from walk(condition.condition)


def accumulators(condition: Condition | None) -> Iterator[Accumulator]:
    if condition is None:
        return
    for node in walk(condition):
        if isinstance(node, Count | Score):
            yield node


def is_timed(condition: Condition) -> bool:
    """Whether time passing alone can make the condition true, so a timer must watch it."""
    return any(isinstance(node, InactiveFor | InStageFor) for node in walk(condition))
