"""Identity in the stager: which ids are one person, and merging an id's history into a contact.

An `identify` call with both a userId and an anonymousId, or an `alias` call, links an id (the
alias) to the contact the call is about (its canonical id, a userId). The stager applies the
call like any touchpoint, then merges, in the same database transaction as the batch
(docs/identity.md):

1. Refuse what must not be merged: placeholder ids, an alias that already belongs to another
   contact, an alias that is itself a known person (it was some touchpoint's userId), a contact
   at its limit of linked ids. A refusal is recorded in `identity_conflicts` and counted.
2. Lock the alias's partition (its offset row): the alias's touchpoints are applied by that
   partition's batches, which lock the same row, so none can land half-way through the merge.
3. Recompute the contact in every journey from both histories (shared.journey.merge) and
   write it: one transition per real stage change, cause `merge`; the alias's states deleted
   (its transitions stay, as history, no longer counted by analytics); its journal rows become
   the contact's; the link stored; a `contact.merged` record queued for the transitions topic.

From then on every batch resolves its contacts through `contact_links` first
(`StagerStorage.aliases`), so a touchpoint sent with the alias, late or already in flight, is
forwarded to the contact's partition and applied there.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.stager import metrics
from services.stager.offsets import Partition, lock_offset
from services.stager.processing import Changes
from services.stager.storage import StagerStorage
from shared import wire
from shared.db.tables import (
    contact_links,
    contact_states,
    identity_conflicts,
    processed_messages,
    transitions,
)
from shared.journey import (
    ContactState,
    History,
    InvalidTouchpoint,
    Journey,
    Touchpoint,
    merge,
)
from shared.wire import ContactMerged, partition_for_key

log = logging.getLogger(__name__)

# Ids that name nobody in particular: SDK defaults, serialised nulls, placeholders a form
# submits. Linking one would glue together everyone who sent it. Compared case-insensitively.
DEFAULT_PLACEHOLDER_IDS = (
    "0", "-1", "null", "none", "nil", "undefined", "nan", "anonymous", "guest", "unknown",
    "user", "visitor", "n/a", "na", "test", "[object object]", "{}", "true", "false",
)
# All-zero UUIDs and other runs of zeros, with or without dashes or braces.
_ZEROS = re.compile(r"[{(]?[0-]+[})]?")


@dataclass(frozen=True)
class IdentityRules:
    """The safety rules a link must pass (docs/identity.md, "Safety rules")."""

    placeholders: frozenset[str] = frozenset(DEFAULT_PLACEHOLDER_IDS)
    max_linked_ids: int = 100  # ids merged into one contact, beyond its own

    @classmethod
    def of(cls, placeholders: Iterable[str], max_linked_ids: int) -> IdentityRules:
        return cls(frozenset(p.strip().lower() for p in placeholders), max_linked_ids)

    def is_placeholder(self, contact_id: str) -> bool:
        text = contact_id.strip().lower()
        return not text or text in self.placeholders or _ZEROS.fullmatch(text) is not None


@dataclass(frozen=True)
class Link:
    """A call saying `alias` is `canonical`: its kind (identify | alias), messageId, time."""

    alias: str
    canonical: str
    kind: str
    message_id: str
    at: datetime


def link_of(touchpoint: Touchpoint) -> Link | None:
    """The link a touchpoint asks for, if any: an identify naming a userId and an anonymousId,
    or an alias call (its previousId becomes the contact's)."""
    if touchpoint.type == "identify" and touchpoint.user_id is not None:
        alias = touchpoint.anonymous_id
    elif touchpoint.type == "alias":
        alias = touchpoint.previous_id
    else:
        return None
    if alias is None or alias == touchpoint.contact:
        return None
    return Link(alias, touchpoint.contact, touchpoint.type, touchpoint.message_id,
                touchpoint.timestamp)


def forwarded(value: bytes, canonical: str, alias: str) -> bytes:
    """A touchpoint message sent with `alias`, readdressed to the contact it belongs to."""
    message = json.loads(value)
    message["contact"] = canonical
    message["forwardedFrom"] = alias
    return json.dumps(message, separators=(",", ":")).encode()


@dataclass
class MergeResult:
    """What one link did: its outcome (a metric label) and, if merged, the contact's changes."""

    outcome: str  # merged | already_merged | placeholder | <a conflict reason>
    changes: Changes | None = None
    record: dict[str, object] | None = None  # the contact.merged record, for the outbox


async def merge_link(
    conn: AsyncConnection,
    storage: StagerStorage,
    link: Link,
    *,
    rules: IdentityRules,
    journeys: Sequence[Journey],
    where: Partition,
    partitions: int,
    until: datetime | None,
) -> MergeResult:
    """Merge `link.alias` into `link.canonical` (a contact of partition `where`), or refuse."""
    if rules.is_placeholder(link.alias) or rules.is_placeholder(link.canonical):
        return _counted(MergeResult("placeholder"))
    theirs = partition_for_key(link.alias.encode(), partitions)
    if theirs != where.partition:
        await lock_offset(conn, Partition(where.group_id, where.topic, theirs))
    refusal = await _refusal(conn, link, rules)
    if refusal is not None:
        if refusal != "already_merged":
            await conn.execute(sa.insert(identity_conflicts).values(
                contact=link.canonical, other=link.alias, reason=refusal,
                cause=link.message_id, at=link.at))
        return _counted(MergeResult(refusal))

    ids = (link.canonical, link.alias)
    journals = await _journals(conn, ids)
    stored = await storage.load_states(conn, list(ids))
    states = {(s.journey_id, s.contact): s for s in map(ContactState.from_stored, stored)}
    changes = Changes()
    for journey in journeys:
        key = (journey.id, link.canonical)
        before = states.get(key)
        step = merge(journey, History(before, journals[link.canonical]),
                     History(states.get((journey.id, link.alias)), journals[link.alias]),
                     link.canonical, link.alias, until)
        if step.state is not None:
            changes.record(key, before, step)

    await conn.execute(sa.delete(contact_states).where(contact_states.c.contact == link.alias))
    # Its transitions stay as history, out of the analytics: the person counts as the contact,
    # whose rows the merge's changes restamp with its (maybe earlier) cohort and first touch.
    await conn.execute(sa.update(transitions).where(transitions.c.contact == link.alias)
                       .values(contact_entered_at=None, first_channel=None))
    # The alias's journal becomes the contact's: its redelivered messages stay duplicates.
    theirs_only = ~processed_messages.c.message_id.in_(
        sa.select(processed_messages.c.message_id)
        .where(processed_messages.c.contact == link.canonical).scalar_subquery())
    await conn.execute(sa.update(processed_messages)
                       .where(processed_messages.c.contact == link.alias, theirs_only)
                       .values(contact=link.canonical))
    await conn.execute(sa.delete(processed_messages)
                       .where(processed_messages.c.contact == link.alias))
    await conn.execute(sa.insert(contact_links).values(
        alias=link.alias, canonical=link.canonical, kind=link.kind, cause=link.message_id,
        linked_at=link.at))
    traits = next((step.state.traits for step in changes.states.values()
                   if step.state is not None), {})
    record = wire.encode_merged(
        ContactMerged(link.canonical, link.alias, link.kind, link.message_id, link.at), traits)
    return _counted(MergeResult("merged", changes, record))


async def _refusal(conn: AsyncConnection, link: Link, rules: IdentityRules) -> str | None:
    """Why the link must not be merged (a reason code), or None."""
    owner = (await conn.execute(
        sa.select(contact_links.c.canonical).where(contact_links.c.alias == link.alias)
    )).scalar_one_or_none()
    if owner == link.canonical:
        return "already_merged"
    if owner is not None:
        return "already_linked"
    # A known person: the alias was some touchpoint's userId, or has ids merged into it.
    known = sa.select(
        sa.exists().where(processed_messages.c.contact == link.alias,
                          processed_messages.c.identified.is_(True))
        | sa.exists().where(contact_links.c.canonical == link.alias)
    )
    if (await conn.execute(known)).scalar():
        return "both_identified"
    linked = (await conn.execute(
        sa.select(sa.func.count()).where(contact_links.c.canonical == link.canonical)
    )).scalar_one()
    if linked >= rules.max_linked_ids:
        return "too_many_ids"
    return None


async def _journals(
    conn: AsyncConnection, ids: Sequence[str]
) -> dict[str, list[Touchpoint]]:
    """Each id's journaled touchpoints. A row the journal cannot replay (written before it kept
    messages) is left out, which leaves that history incomplete, as it is."""
    journals: dict[str, list[Touchpoint]] = {contact_id: [] for contact_id in ids}
    rows = await conn.execute(
        sa.select(processed_messages.c.contact, processed_messages.c.message)
        .where(processed_messages.c.contact.in_(list(ids)))
    )
    for contact_id, message in rows:
        if message is None:
            continue
        try:
            journals[contact_id].append(wire.decode_touchpoint(json.loads(message)))
        except (ValueError, InvalidTouchpoint):  # it was valid when journaled; be safe anyway
            log.warning("a journaled touchpoint no longer decodes; left out of a merge")
    return journals


def _counted(result: MergeResult) -> MergeResult:
    metrics.IDENTITY_LINKS.labels(result.outcome).inc()
    return result


def merged_outbox_row(record: Mapping[str, object], canonical: str) -> dict[str, bytes]:
    return {"key": canonical.encode(),
            "payload": json.dumps(record, separators=(",", ":")).encode()}
