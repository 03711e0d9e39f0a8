"""What the transitions topic carries, told apart by `type`, and how its reader takes a record.

Two records share the topic, both keyed by the contact: the transition record
(`contact.stage_changed`, transition.py) and the contact-merged record (`contact.merged`,
merged.py). The actions worker reads every record through `decode_record`, which parses it once
and hands it to the decoder of its type. A record of any other type, or one its decoder refuses,
is a MalformedTransition (reason `invalid_json` or `invalid_field`, the error naming the field),
which the worker dead-letters whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from shared.wire.merged import MERGED_TYPE, ContactMerged, MalformedMerge, decode_merged
from shared.wire.transition import (
    TRANSITION_TYPE,
    MalformedTransition,
    TransitionRecord,
    json_object,
    transition_record,
)


@dataclass(frozen=True)
class MergedRecord:
    """A contact.merged record as published by the stager: the message, and the merge it states."""

    message: Mapping[str, Any]
    merge: ContactMerged


TopicRecord: TypeAlias = TransitionRecord | MergedRecord


def decode_record(value: bytes | None) -> TopicRecord:
    """Parse a record of the transitions topic and check it as its type requires."""
    message = json_object(value)
    kind = message.get("type")
    if kind == TRANSITION_TYPE:
        return transition_record(message)
    if kind == MERGED_TYPE:
        return _merged_record(message)
    raise MalformedTransition("invalid_field",
                              f"type: must be {TRANSITION_TYPE} or {MERGED_TYPE}")


def _merged_record(message: Mapping[str, Any]) -> MergedRecord:
    try:
        merge = decode_merged(message)
    except MalformedMerge as exc:
        raise MalformedTransition("invalid_field", str(exc)) from None
    # Deliveries take their ids from the merge id: one that does not match the ids it joins
    # would dedupe against the wrong merge.
    if message.get("merge_id") != merge.merge_id:
        raise MalformedTransition("invalid_field",
                                  "merge_id: must be the merge id of contact and merged")
    return MergedRecord(message, merge)
