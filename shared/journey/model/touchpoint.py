"""A touchpoint: one Segment call about a contact, as the engine sees it.

The engine never reads the wire: shared.wire decodes the touchpoints topic's messages into these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, overload

from shared.journey.runtime.channel import derive_channel

# The kinds of Segment call a touchpoint can be; conditions match on them (`type:`).
TOUCHPOINT_TYPES = ("track", "identify", "page", "screen", "group", "alias")


T = TypeVar("T")


class computed_once(Generic[T]):
    """`functools.cached_property` without its lock (Python 3.11 takes an RLock on every first
    read; 3.12 dropped it): a value computed from an immutable object needs none, and the engine
    reads three of them for every touchpoint."""

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> computed_once[T]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...
    def __get__(self, instance: object | None, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.compute(instance)
        return value


@dataclass(frozen=True)
class Touch:
    """A channel and when the contact was reached through it (kept in its state)."""

    channel: str
    at: datetime


@dataclass(frozen=True)
class Touchpoint:
    type: str
    message_id: str
    contact: str
    timestamp: datetime
    received_at: datetime
    source_id: str
    user_id: str | None = None
    anonymous_id: str | None = None
    previous_id: str | None = None
    group_id: str | None = None
    event: str | None = None
    name: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    traits: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)
    original_timestamp: datetime | None = None
    sent_at: datetime | None = None

    @classmethod
    def of(cls, **values: Any) -> Touchpoint:
        """`Touchpoint(**values)` given every field, without the frozen __init__ (which sets
        each field through object.__setattr__): the stager decodes one per record."""
        if values.keys() != _TOUCHPOINT_FIELDS:
            raise TypeError(f"Touchpoint.of needs exactly the fields {sorted(_TOUCHPOINT_FIELDS)}")
        touchpoint = object.__new__(cls)
        touchpoint.__dict__.update(values)
        return touchpoint

    # The derived values are cached on first use: every journey asks for them, and a touchpoint
    # never changes (a frozen dataclass; `computed_once` writes straight into its __dict__).
    @computed_once
    def channel(self) -> str:
        return derive_channel(self.properties, self.context)

    @computed_once
    def touch(self) -> Touch:
        """The contact reached through this touchpoint's channel at its time (one object,
        shared by every journey's state)."""
        return Touch(self.channel, self.timestamp)

    @computed_once
    def contact_traits(self) -> Mapping[str, Any]:
        """Traits this touchpoint says about its contact.

        identify carries them in `traits`, other calls may carry them in `context.traits`
        (Segment does so); group traits describe the group, not the contact, so they are left out.
        """
        if self.type == "group":
            return {}
        merged: dict[str, Any] = {}
        context_traits = self.context.get("traits")
        if isinstance(context_traits, Mapping):
            merged.update(context_traits)
        if self.type == "identify" and self.traits:
            merged.update(self.traits)
        return merged


_TOUCHPOINT_FIELDS = frozenset(f.name for f in fields(Touchpoint))


def parse_time(text: str) -> datetime:
    """An ISO 8601 instant with a zone, normalised to UTC; raises ValueError otherwise."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is UTC:  # already normalised, e.g. every time the engine itself stored
        return parsed
    if parsed.tzinfo is None:
        raise ValueError("needs a time zone, e.g. 2026-11-23T08:00:00Z")
    return parsed.astimezone(UTC)
