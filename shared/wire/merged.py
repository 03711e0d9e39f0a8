"""The contact-merged record: the stager's word, on the transitions topic, that two ids are one.

When the stager merges an id's history into a contact (docs/identity.md), it publishes this
beside any transitions the merge caused, keyed by the contact, so downstream systems learn of
the link with both ids. The actions worker delivers it to the webhooks of journeys that
subscribe with `on: {contact_merged: true}`; like a transition record, it is also the body.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MERGED_VERSION = 1
MERGED_TYPE = "contact.merged"

# Fixed namespace: a merge has the same id on every replay, so its deliveries dedupe.
_NAMESPACE = uuid.UUID("0b6f3f4e-2a53-4f1c-9e8e-6d6572676564")


@dataclass(frozen=True)
class ContactMerged:
    """`merged` (an anonymousId or an alias call's previousId) now belongs to `contact`."""

    contact: str
    merged: str
    kind: str  # identify | alias: the call that linked them
    message_id: str  # that call's messageId
    at: datetime  # that call's event time

    @property
    def merge_id(self) -> str:
        """Deterministic (a UUID from both ids): the same merge has the same id, always."""
        return str(uuid.uuid5(_NAMESPACE, f"{self.contact}\x1f{self.merged}"))


def encode_merged(merge: ContactMerged, traits: Mapping[str, Any]) -> dict[str, Any]:
    """The record as a JSON object; `traits` are the contact's right after the merge."""
    return {
        "v": MERGED_VERSION,
        "type": MERGED_TYPE,
        "merge_id": merge.merge_id,
        "contact": merge.contact,
        "merged": merge.merged,
        "at": merge.at.isoformat(),
        "cause": {"kind": merge.kind, "message_id": merge.message_id},
        "traits": dict(traits),
    }


class MalformedMerge(ValueError):
    """A contact.merged record missing what a receiver relies on (names the field)."""


def decode_merged(message: Mapping[str, Any]) -> ContactMerged:
    """The merge a parsed record describes; raises MalformedMerge naming the field."""
    if message.get("v") != MERGED_VERSION or isinstance(message.get("v"), bool):
        raise MalformedMerge(f"v: must be {MERGED_VERSION}")
    cause = message.get("cause")
    if not isinstance(cause, Mapping):
        raise MalformedMerge("cause: must be an object")
    try:
        at = datetime.fromisoformat(_text(message, "at"))
    except ValueError:
        raise MalformedMerge("at: must be an ISO 8601 time") from None
    if at.tzinfo is None:
        raise MalformedMerge("at: needs a time zone")
    return ContactMerged(
        contact=_text(message, "contact"),
        merged=_text(message, "merged"),
        kind=_text(cause, "kind", "cause.kind"),
        message_id=_text(cause, "message_id", "cause.message_id"),
        at=at.astimezone(UTC),
    )


def _text(data: Mapping[str, Any], key: str, name: str | None = None) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedMerge(f"{name or key}: must be a non-empty string")
    return value
