"""Touchpoints of erased people are dropped before they are applied (docs/privacy.md).

Ingest already drops most of them, from its in-memory copy of the suppression list; this is
the check that holds however an event reached the topic: sent in the seconds before ingest
reloaded its copy, read by the stager before the erase, or replayed from the log later. It runs
inside the batch's transaction, after the partition's offset row is locked, which is what an
erase serialises with (shared/privacy/erasure.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.journey import Touchpoint
from shared.privacy import suppressed_among


def _ids(tp: Touchpoint) -> tuple[str | None, ...]:
    return (tp.contact, tp.user_id, tp.anonymous_id, tp.previous_id)


async def drop_suppressed(conn: AsyncConnection, touchpoints: Sequence[Touchpoint]
                          ) -> tuple[list[Touchpoint], int]:
    """The touchpoints none of whose ids is suppressed, and how many were dropped. One query
    for the whole batch while the list is empty; the ids are hashed only when it is not."""
    ids = {i for tp in touchpoints for i in _ids(tp) if i}
    suppressed = await suppressed_among(conn, ids)
    if not suppressed:
        return list(touchpoints), 0
    kept = [tp for tp in touchpoints if not any(i in suppressed for i in _ids(tp) if i)]
    return kept, len(touchpoints) - len(kept)
