"""What the engine remembers about one contact in one journey, and its JSON form for storage."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import orjson

from shared.journey.model.touchpoint import Touch, parse_time

STATE_FORMAT = 1
# Redelivery comes from Kafka rebalances and SDK retries, i.e. within minutes and a few hundred
# messages of the original, so a bounded ring of recent ids is enough to make it a no-op.
SEEN_LIMIT = 256
UNKNOWN = -1  # ContactState.observed of a state stored before touchpoints were counted


@dataclass(frozen=True)
class ScoreTotal:
    """A score's running total, valid at `as_of` (decay is applied lazily from there)."""

    value: float
    as_of: datetime


@dataclass(frozen=True)
class ContactState:
    journey_id: str
    journey_version: int
    contact: str
    stage: str | None = None
    stage_entered_at: datetime | None = None
    last_event_at: datetime | None = None
    first_touch: Touch | None = None
    last_touch: Touch | None = None
    traits: Mapping[str, Any] = field(default_factory=dict)
    trait_times: Mapping[str, datetime] = field(default_factory=dict)
    counts: Mapping[str, tuple[datetime, ...]] = field(default_factory=dict)
    scores: Mapping[str, ScoreTotal] = field(default_factory=dict)
    seen: tuple[str, ...] = ()
    sequence: int = 0
    # Touchpoints folded into this state (UNKNOWN for a state stored before it was counted). A
    # merge compares it with the contact's journal: equal means the journal still holds the
    # whole history, so it can be replayed (docs/identity.md).
    observed: int = 0
    # When the contact entered the journey, and each stage it has reached, in the order it first
    # reached them: what the funnel counts (docs/analytics.md). Set by the engine's moves.
    journey_entered_at: datetime | None = None
    reached: tuple[str, ...] = ()

    @classmethod
    def fresh(cls, journey_id: str, journey_version: int, contact: str) -> ContactState:
        """`ContactState(journey_id, journey_version, contact)`, made as `evolve` makes copies
        (a blank state is made for every new contact in every journey)."""
        state = object.__new__(cls)
        state.__dict__.update(_BLANK, journey_id=journey_id, journey_version=journey_version,
                              contact=contact)
        return state

    def evolve(self, **changes: Any) -> ContactState:
        """A copy with `changes` applied: `dataclasses.replace`, about four times faster.

        The engine makes a new state for every touchpoint in every journey; `replace` re-runs the
        frozen __init__ (one object.__setattr__ per field). This copies the instance dict, as
        `copy.copy` does, after checking the names as `replace` would.
        """
        unknown = changes.keys() - _FIELDS
        if unknown:
            raise TypeError(f"ContactState has no field(s) {sorted(unknown)}")
        copy = object.__new__(ContactState)
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(changes)
        return copy

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (str, int, float, bool, None, list, dict) for PostgreSQL/SQLite."""
        return {
            "v": STATE_FORMAT,
            "journey_id": self.journey_id,
            "journey_version": self.journey_version,
            "contact": self.contact,
            "stage": self.stage,
            "stage_entered_at": _time_or_none(self.stage_entered_at),
            "last_event_at": _time_or_none(self.last_event_at),
            "first_touch": _touch_json(self.first_touch),
            "last_touch": _touch_json(self.last_touch),
            "traits": dict(self.traits),
            "trait_times": {k: v.isoformat() for k, v in self.trait_times.items()},
            "counts": {k: [t.isoformat() for t in v] for k, v in self.counts.items()},
            "scores": {
                k: {"value": v.value, "as_of": v.as_of.isoformat()} for k, v in self.scores.items()
            },
            "seen": list(self.seen),
            "sequence": self.sequence,
            "observed": self.observed,
            "journey_entered_at": _time_or_none(self.journey_entered_at),
            "reached": list(self.reached),
        }

    def to_stored(self) -> dict[str, Any]:
        """The JSON the stager stores: `to_json` without the ring of recent messageIds.

        The stager's processed_messages table already rejects redeliveries for
        `dedupe_retention_days`, which is a stronger promise than the ring, and the ring would
        make every row of an active contact carry hundreds of ids.
        """
        data = self.to_json()
        data["seen"] = []
        return data

    def stored_text(self) -> str:
        """`to_stored` as JSON text, written in one pass: the stager's hot path.

        orjson writes datetimes as `isoformat` does and tuples as lists, so nothing is converted
        first; the test beside `to_stored` holds the two equal. A value orjson refuses (an
        integer beyond 64 bits in a trait) takes the slow path.
        """
        data = {
            "v": STATE_FORMAT,
            "journey_id": self.journey_id,
            "journey_version": self.journey_version,
            "contact": self.contact,
            "stage": self.stage,
            "stage_entered_at": self.stage_entered_at,
            "last_event_at": self.last_event_at,
            "first_touch": _touch_fields(self.first_touch),
            "last_touch": _touch_fields(self.last_touch),
            "traits": self.traits,
            "trait_times": self.trait_times,
            "counts": self.counts,
            "scores": {k: {"value": v.value, "as_of": v.as_of} for k, v in self.scores.items()},
            "seen": (),
            "sequence": self.sequence,
            "observed": self.observed,
            "journey_entered_at": self.journey_entered_at,
            "reached": self.reached,
        }
        try:
            return orjson.dumps(data, default=_plain).decode()
        except TypeError:
            return json.dumps(self.to_stored(), separators=(",", ":"))

    @classmethod
    def from_stored(cls, data: Mapping[str, Any] | str | bytes) -> ContactState:
        """The inverse of `to_stored`, from the stored column: a dict (JSONB, SQLite's JSON) or
        JSON text (PostgreSQL's `state::text`). Its ring of recent messageIds is empty."""
        return cls.from_json(_loads(data) if isinstance(data, (str, bytes)) else data)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ContactState:
        if data.get("v") != STATE_FORMAT:
            raise ValueError(f"unknown contact state format {data.get('v')!r}")
        # Built as `evolve` builds its copies: a frozen dataclass's __init__ sets each field
        # through object.__setattr__, which costs more than the parsing around it.
        state = object.__new__(cls)
        state.__dict__.update(
            journey_id=str(data["journey_id"]),
            journey_version=int(data["journey_version"]),
            contact=str(data["contact"]),
            stage=data.get("stage"),
            stage_entered_at=_parse_or_none(data.get("stage_entered_at")),
            last_event_at=_parse_or_none(data.get("last_event_at")),
            first_touch=_touch_from(data.get("first_touch")),
            last_touch=_touch_from(data.get("last_touch")),
            traits=dict(data.get("traits") or {}),
            trait_times={k: parse_time(v) for k, v in (data.get("trait_times") or {}).items()},
            counts={k: tuple(map(parse_time, v)) for k, v in (data.get("counts") or {}).items()},
            scores={
                k: ScoreTotal(float(v["value"]), parse_time(v["as_of"]))
                for k, v in (data.get("scores") or {}).items()
            },
            seen=tuple(data.get("seen") or ()),
            sequence=int(data.get("sequence", 0)),
            observed=int(data.get("observed", UNKNOWN)),
            # A state stored before these were kept knows only its current stage.
            journey_entered_at=_parse_or_none(data.get("journey_entered_at")),
            reached=tuple(data["reached"]) if "reached" in data
            else ((data["stage"],) if data.get("stage") else ()),
        )
        return state


_FIELDS = frozenset(f.name for f in fields(ContactState))
# A blank state's fields. Its empty mappings are shared by every fresh state, as `evolve` shares
# a state's mappings with its copies: nothing mutates a state's mappings, it replaces them.
_BLANK = dict(ContactState("", 0, "").__dict__)


def _time_or_none(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_or_none(value: str | None) -> datetime | None:
    return parse_time(value) if value is not None else None


def _touch_json(touch: Touch | None) -> dict[str, str] | None:
    return {"channel": touch.channel, "at": touch.at.isoformat()} if touch else None


def _touch_fields(touch: Touch | None) -> dict[str, Any] | None:
    return {"channel": touch.channel, "at": touch.at} if touch else None


def _plain(value: Any) -> Any:
    """What orjson cannot write itself: mappings that are not dicts (read-only views)."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(type(value).__name__)


def _loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # what orjson refuses and json reads (NaN, huge numbers)
        return json.loads(text)


def _touch_from(data: Mapping[str, str] | None) -> Touch | None:
    return Touch(data["channel"], parse_time(data["at"])) if data else None
