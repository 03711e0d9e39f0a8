"""Plain-English descriptions of conditions, used as transition reasons and in the CLI."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.journey.model.condition import (
    AllOf,
    AnyOf,
    Condition,
    Count,
    EventMatch,
    Filter,
    InactiveFor,
    InStageFor,
    Score,
    Traits,
)


def describe(condition: Condition) -> str:
    if isinstance(condition, EventMatch):
        return _event(condition)
    if isinstance(condition, Count):
        window = f" within {span(condition.within)}" if condition.within else ""
        return f"{condition.at_least} touchpoints{window} where {describe(condition.matching)}"
    if isinstance(condition, Score):
        decay = f", halving every {span(condition.half_life)}" if condition.half_life else ""
        return f"score reached {_number(condition.at_least)}{decay}"
    if isinstance(condition, InactiveFor):
        return f"no touchpoints for {span(condition.duration)}"
    if isinstance(condition, InStageFor):
        return f"in the stage for {span(condition.duration)}"
    if isinstance(condition, Traits):
        return "traits " + _filters(condition.filters)
    if isinstance(condition, AllOf):
        return " and ".join(_nested(c) for c in condition.conditions)
    if isinstance(condition, AnyOf):
        return " or ".join(_nested(c) for c in condition.conditions)
    return f"not {_nested(condition.condition)}"


def span(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds % size == 0 and seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _nested(condition: Condition) -> str:
    text = describe(condition)
    return f"({text})" if isinstance(condition, AllOf | AnyOf) else text


def _event(match: EventMatch) -> str:
    parts = []
    if match.events:
        parts.append("event " + _options(match.events))
    if match.names:
        parts.append("name " + _options(match.names))
    if match.types:
        parts.append("type " + _options(match.types))
    if match.channels:
        parts.append("channel " + _options(match.channels))
    if match.properties:
        parts.append("properties " + _filters(match.properties))
    return ", ".join(parts) if parts else "any touchpoint"


def _options(values: tuple[str, ...]) -> str:
    return " or ".join(f"'{v}'" for v in values)


def _filters(filters: tuple[Filter, ...]) -> str:
    return ", ".join(
        f"{'.'.join(f.path)} {t.operator} {_value(t.expected)}" for f in filters for t in f.tests
    )


def _value(value: Any) -> str:
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
