"""Durations as journeys write them: `30d`, `12h`, `2w`, `1d12h`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+)([smhdw])")
_WHOLE = re.compile(r"(?:\d+[smhdw])+")

DURATION_HINT = "write a number and a unit, e.g. 30d, 12h, 90m, 2w or 1d12h"


def parse_duration(text: str) -> timedelta:
    """Parse a positive duration; raises ValueError with a hint a marketer can act on."""
    compact = text.strip().replace(" ", "")
    if not _WHOLE.fullmatch(compact):
        raise ValueError(f"'{text}' is not a duration; {DURATION_HINT}")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(compact))
    if seconds <= 0:
        raise ValueError(f"'{text}' is zero; a duration must be longer than that")
    return timedelta(seconds=seconds)


def format_duration(duration: timedelta) -> str:
    """A `parse_duration` spelling of a duration in days and smaller units (30d, not 4w2d)."""
    remaining = int(duration.total_seconds())
    if remaining == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if remaining >= size:
            parts.append(f"{remaining // size}{unit}")
            remaining %= size
    return "".join(parts)
