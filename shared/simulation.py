"""What-if runs: wire messages through a journey as the stager would take them (`polku simulate`).

Beside the engine rather than in it: its input is touchpoint messages, which shared.wire reads,
and the engine never sees the wire (it replays Touchpoints: shared.journey.replay).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from shared.journey import Journey, Touchpoint, Transition, replay, run_timers
from shared.wire import decode_touchpoint


def simulate(
    journey: Journey, messages: Iterable[Mapping[str, Any]], until: datetime | None = None
) -> dict[str, list[Transition]]:
    """Each contact's transitions for wire messages in arrival order, as the stager would take them.

    Messages are grouped by contact (the partition key) keeping their order; after a contact's
    last message its timers are ticked up to `until`, if given. Raises InvalidTouchpoint on a
    malformed message.
    """
    by_contact: dict[str, list[Touchpoint]] = {}
    for message in messages:
        touchpoint = decode_touchpoint(message)
        by_contact.setdefault(touchpoint.contact, []).append(touchpoint)
    paths: dict[str, list[Transition]] = {}
    for contact, touchpoints in by_contact.items():
        step = replay(journey, touchpoints)
        paths[contact] = list(step.transitions)
        if until is not None:
            paths[contact].extend(run_timers(journey, step.state, until).transitions)
    return paths
