"""A contact's move between stages: the record the stager stores and publishes."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.journey.model.touchpoint import parse_time

# A transition's cause in the engine's form: the touchpoint's messageId, this prefix and the
# rule whose timer fired, or the other prefix and the id whose history a merge brought in.
# (On the wire, shared.wire spells it out as an object.)
_TIMER = "timer:"
_MERGE = "merge:"

# Fixed namespace: transition ids must be identical across replays, machines and releases.
_NAMESPACE = uuid.UUID("5b0e6c1e-7d1f-4c55-9c8a-6f6f6c6b7570")
_NAMESPACE_BYTES = _NAMESPACE.bytes


@dataclass(frozen=True)
class Transition:
    transition_id: str
    journey_id: str
    journey_version: int
    contact: str
    from_stage: str | None
    to_stage: str
    at: datetime
    cause: str
    rule_id: str | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        """The wire/record form, keyed as in the architecture contract (`from`, `to`, ...)."""
        return {
            "transition_id": self.transition_id,
            "journey": self.journey_id,
            "journey_version": self.journey_version,
            "contact": self.contact,
            "from": self.from_stage,
            "to": self.to_stage,
            "at": self.at.isoformat(),
            "cause": self.cause,
            "rule": self.rule_id,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Transition:
        return cls(
            transition_id=str(data["transition_id"]),
            journey_id=str(data["journey"]),
            journey_version=int(data["journey_version"]),
            contact=str(data["contact"]),
            from_stage=data.get("from"),
            to_stage=str(data["to"]),
            at=parse_time(str(data["at"])),
            cause=str(data["cause"]),
            rule_id=data.get("rule"),
            reason=str(data["reason"]),
        )


def transition_id(journey_id: str, contact: str, cause: str, sequence: int) -> str:
    """Deterministic id: replaying the same touchpoints yields the same ids, so consumers dedupe."""
    return _uuid5(f"{journey_id}\x1f{contact}\x1f{cause}\x1f{sequence}")


def _uuid5(name: str) -> str:
    """`str(uuid.uuid5(_NAMESPACE, name))` without building a UUID object (a tenth of the
    engine's time went there): RFC 4122's SHA-1 name-based UUID, spelt out."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def timer_cause(rule_id: str) -> str:
    """The cause of a transition made by `rule_id`'s timer (part of its transition id)."""
    return _TIMER + rule_id


def timer_rule(cause: str) -> str | None:
    """The rule whose timer caused a transition, or None when a touchpoint caused it."""
    return cause[len(_TIMER):] if cause.startswith(_TIMER) else None


def merge_cause(linked_id: str) -> str:
    """The cause of a transition made by merging `linked_id`'s history into a contact."""
    return _MERGE + linked_id


def merged_id(cause: str) -> str | None:
    """The id whose merge caused a transition, or None when a touchpoint or timer did."""
    return cause[len(_MERGE):] if cause.startswith(_MERGE) else None
