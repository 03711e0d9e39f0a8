"""Matching one touchpoint, or one mapping of properties or traits, against filters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.journey.model.condition import AllOf, AnyOf, Condition, EventMatch, Filter, Not, Test
from shared.journey.model.touchpoint import Touchpoint

_MISSING = object()


def touchpoint_matches(condition: Condition, touchpoint: Touchpoint) -> bool:
    """Evaluate an event-level condition (event match and all/any/not of them)."""
    if isinstance(condition, EventMatch):
        return event_matches(condition, touchpoint)
    if isinstance(condition, AllOf):
        return all(touchpoint_matches(c, touchpoint) for c in condition.conditions)
    if isinstance(condition, AnyOf):
        return any(touchpoint_matches(c, touchpoint) for c in condition.conditions)
    if isinstance(condition, Not):
        return not touchpoint_matches(condition.condition, touchpoint)
    return False


def event_matches(match: EventMatch, touchpoint: Touchpoint) -> bool:
    if match.types and touchpoint.type not in match.types:
        return False
    if match.events and touchpoint.event not in match.events:
        return False
    if match.names and touchpoint.name not in match.names:
        return False
    if match.channels and touchpoint.channel not in match.channels:
        return False
    return filters_match(match.properties, touchpoint.properties)


def filters_match(filters: tuple[Filter, ...], values: Mapping[str, Any]) -> bool:
    return all(_filter_matches(f, values) for f in filters)


def _filter_matches(flt: Filter, values: Mapping[str, Any]) -> bool:
    actual = lookup(values, flt.path)
    return all(passes(test, actual) for test in flt.tests)


def lookup(values: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    # A literal key containing dots wins over descending, so {"utm.source": ...} still matches.
    joined = ".".join(path)
    if joined in values:
        return values[joined]
    current: Any = values
    for part in path:
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return current


def passes(test: Test, actual: Any) -> bool:
    present = actual is not _MISSING and actual is not None
    if test.operator == "exists":
        return present is bool(test.expected)
    if not present:
        return False
    if test.operator == "equals":
        return same(actual, test.expected)
    if test.operator == "in":
        return any(same(actual, option) for option in test.expected)
    if test.operator == "contains":
        if isinstance(actual, str):
            return isinstance(test.expected, str) and test.expected in actual
        if isinstance(actual, list):
            return any(same(item, test.expected) for item in actual)
        return False
    if not _is_number(actual):
        return False
    if test.operator == "gt":
        return bool(actual > test.expected)
    if test.operator == "gte":
        return bool(actual >= test.expected)
    if test.operator == "lt":
        return bool(actual < test.expected)
    if test.operator == "lte":
        return bool(actual <= test.expected)
    return False


def same(actual: Any, expected: Any) -> bool:
    """JSON equality: true is not 1, but 1 equals 1.0."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    return bool(actual == expected)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
