"""The bulk operations a stager batch makes inside its transaction, whatever the database.

Each takes the batch's open connection: the store (services/stager/store.py) owns the
transaction, locks the partition's offset row first and saves the next offset last, so a
backend only has to write (or read) what it is given, all at once. Rows arrive as the contact
read model shapes them (shared/db/read_model.py); states are returned in their stored form, for
`ContactState.from_stored`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

MessageKey = tuple[str, str]  # (contact, messageId), the unit of dedupe

# How both backends' state upserts end: a stored state is replaced whole (all but its key).
REPLACE_STATE = """
    on conflict (journey_id, contact) do update set
        journey_version = excluded.journey_version, stage = excluded.stage,
        stage_entered_at = excluded.stage_entered_at, state = excluded.state,
        timer_due_at = excluded.timer_due_at, journey_entered_at = excluded.journey_entered_at,
        first_channel = excluded.first_channel, reached = excluded.reached,
        in_order = excluded.in_order, partition = excluded.partition,
        updated_at = excluded.updated_at
"""


class JournalEntry(NamedTuple):
    """One touchpoint for the journal (`processed_messages`): its key, and what a merge needs."""

    contact: str
    message_id: str
    at: datetime  # event time
    identified: bool  # the touchpoint named its contact as a userId
    message: bytes  # the touchpoint message as read from the log


class StagerStorage(Protocol):
    async def claim(
        self, conn: AsyncConnection, entries: Sequence[JournalEntry]
    ) -> set[MessageKey]:
        """Journal each distinct (contact, messageId); the keys not journaled before.

        `entries` holds no duplicate key. What another batch already journaled stays as it is,
        so a redelivered message is reported as not new.
        """
        ...

    async def aliases(self, conn: AsyncConnection, contacts: Sequence[str]) -> dict[str, str]:
        """The contacts among `contacts` (not empty) merged into another, with that contact
        (`contact_links`)."""
        ...

    async def load_states(
        self, conn: AsyncConnection, contacts: Sequence[str]
    ) -> Iterable[Mapping[str, Any] | str]:
        """The stored state of every (journey, contact) of `contacts` (`contacts` not empty)."""
        ...

    async def upsert_states(
        self, conn: AsyncConnection, partition: int, rows: list[dict[str, object]]
    ) -> None:
        """Insert or replace these `contact_states` rows (`rows` not empty), owned by
        `partition` from now on."""
        ...

    async def insert_transitions(
        self, conn: AsyncConnection, rows: list[dict[str, object]]
    ) -> None:
        """Insert these `transitions` rows (`rows` not empty)."""
        ...

    async def insert_outbox(
        self, conn: AsyncConnection, partition: int, topic: str, rows: list[dict[str, bytes]]
    ) -> None:
        """Queue records without headers (transitions) for `topic`; `rows` holds each record's
        `key` and `payload` (not empty)."""
        ...
