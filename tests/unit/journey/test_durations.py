"""Specification of journey durations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.journey import parse_duration
from shared.journey.parsing.durations import format_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
        ("2w", timedelta(days=14)),
        ("1d12h", timedelta(days=1, hours=12)),
    ],
)
def test_durations_are_a_number_and_a_unit(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["30", "30days", "d", "-3d", "0d", "1.5d", ""])
def test_anything_else_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
