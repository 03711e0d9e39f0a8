"""The contact read model: the rows the stager keeps per contact, and the view read back from them.

The stager writes a contact's state per journey (`contact_states`) and every transition it made
(`transitions`) in the same transaction as its offsets (services/stager/store.py); the ingest
service's read API shows them (services/ingest/read_api.py). Services never import each other,
so the shape of those rows lives here, between them: the writer builds its rows with
`state_row`/`transition_row` and the reader gets them back through `read_contact`. The state's
JSON column is the engine's own stored form (`ContactState.to_stored`/`from_stored`), so nothing
outside the engine decodes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.tables import contact_states, transitions
from shared.journey import ContactState, Transition


@dataclass(frozen=True)
class ContactJourney:
    """A contact in one journey: where it stands, and how it got there (oldest first)."""

    state: ContactState
    history: tuple[Transition, ...]


def state_row(state: ContactState, timer_due_at: datetime | None) -> dict[str, object]:
    """The `contact_states` row of `state` (without `partition`, which the writer adds).

    `stage` and `stage_entered_at` are copied out of the JSON into columns for the stage gauges
    and ad-hoc queries; `timer_due_at` is indexed for the stager's timer sweep.
    """
    return {
        "journey_id": state.journey_id,
        "contact": state.contact,
        "journey_version": state.journey_version,
        "stage": state.stage,
        "stage_entered_at": state.stage_entered_at,
        "state": state.to_stored(),
        "timer_due_at": timer_due_at,
    }


def transition_row(transition: Transition, seq: int) -> dict[str, object]:
    """The `transitions` row of `transition`, the contact's `seq`-th in its journey."""
    return {
        "transition_id": transition.transition_id,
        "journey_id": transition.journey_id,
        "journey_version": transition.journey_version,
        "contact": transition.contact,
        "from_stage": transition.from_stage,
        "to_stage": transition.to_stage,
        "at": transition.at,
        "cause": transition.cause,
        "rule_id": transition.rule_id,
        "reason": transition.reason,
        "seq": seq,
    }


_HISTORY = (
    transitions.c.transition_id, transitions.c.journey_id, transitions.c.journey_version,
    transitions.c.contact, transitions.c.from_stage, transitions.c.to_stage, transitions.c.at,
    transitions.c.cause, transitions.c.rule_id, transitions.c.reason,
)


async def read_contact(engine: AsyncEngine, contact: str) -> list[ContactJourney]:
    """`contact` in every journey that has seen it, by journey id; empty if none has."""
    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                sa.select(contact_states.c.state).where(contact_states.c.contact == contact)
            )
        ).scalars().all()
        history = await conn.execute(
            sa.select(*_HISTORY)
            .where(transitions.c.contact == contact)
            .order_by(transitions.c.journey_id, transitions.c.seq)
        )
        by_journey: dict[str, list[Transition]] = {}
        for row in history:
            by_journey.setdefault(row.journey_id, []).append(Transition(**row._asdict()))
    states = sorted((ContactState.from_stored(data) for data in stored),
                    key=lambda state: state.journey_id)
    return [ContactJourney(state, tuple(by_journey.get(state.journey_id, ()))) for state in states]
