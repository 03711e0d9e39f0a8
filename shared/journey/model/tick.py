"""The tick a stager sends when a contact's timer deadline has passed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class TimerTick:
    """Evaluate timer rules due at or before `at` (a timezone-aware instant)."""

    at: datetime

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("TimerTick.at must be timezone-aware")
