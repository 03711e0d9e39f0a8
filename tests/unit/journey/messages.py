"""Builders for wire messages, touchpoints and small journeys used across the journey tests."""

from __future__ import annotations

import itertools
import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.journey import Journey, Touchpoint, journey_from_yaml
from shared.wire import decode_touchpoint
from tests.messages import touchpoint

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
_ids = itertools.count(1)


def at(days: float = 0, hours: float = 0, minutes: float = 0) -> datetime:
    return T0 + timedelta(days=days, hours=hours, minutes=minutes)


def message(
    type: str = "track",
    *,
    contact: str = "alice",
    when: datetime = T0,
    message_id: str | None = None,
    event: str | None = None,
    name: str | None = None,
    properties: dict[str, Any] | None = None,
    traits: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A wire message (tests.messages.touchpoint) with short, predictable message ids."""
    return touchpoint(contact, when, type=type, event=event, name=name, properties=properties,
                      traits=traits, context=context,
                      message_id=message_id or f"msg-{next(_ids)}")

def track(event: str, when: datetime = T0, **kw: Any) -> Touchpoint:
    return decode_touchpoint(message("track", event=event, when=when, **kw))


def page(when: datetime = T0, **kw: Any) -> Touchpoint:
    return decode_touchpoint(message("page", when=when, **kw))


def identify(traits: dict[str, Any], when: datetime = T0, **kw: Any) -> Touchpoint:
    return decode_touchpoint(message("identify", traits=traits, when=when, **kw))


def journey(text: str) -> Journey:
    return journey_from_yaml(textwrap.dedent(text), "test.yaml")


FUNNEL = """
id: funnel
version: 1
labels: {fi: Suppilo, en: Funnel}
stages:
  - {id: awareness, labels: {fi: Tietoisuus, en: Awareness}}
  - {id: learning, labels: {fi: Oppiminen, en: Learning}}
  - {id: selection, labels: {fi: Valinta, en: Selection}}
  - {id: customer, labels: {fi: Asiakas, en: Customer}}
  - {id: at-risk, labels: {fi: Riskissä, en: At risk}}
rules:
  - id: bought
    to: customer
    when: {event: Order Completed}
  - id: demo
    from: [awareness, learning]
    to: selection
    when: {event: Demo Requested}
  - id: reading
    from: [awareness]
    to: learning
    when: {event: [Guide Downloaded, Demo Requested]}
  - id: back-to-learning
    from: [selection]
    to: learning
    when: {event: Guide Downloaded}
  - id: went-quiet
    from: [customer]
    to: at-risk
    when: {inactive_for: 30d}
  - id: back-again
    from: [at-risk]
    to: customer
    when: {event: Feature Used}
"""


def funnel() -> Journey:
    return journey(FUNNEL)
