"""The result of advancing one contact by one touchpoint or timer tick."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.journey.model.state import ContactState
from shared.journey.model.transition import Transition


@dataclass(frozen=True)
class Step:
    """New state, the transitions it took (oldest first) and when a timer rule could next fire.

    `state` is None only when a timer ticked for a contact the journey has never seen.
    """

    state: ContactState | None
    transitions: tuple[Transition, ...] = ()
    next_deadline: datetime | None = None
