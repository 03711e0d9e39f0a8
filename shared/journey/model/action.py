"""Actions: which webhooks a transition (or a merge of two ids) triggers, and what each carries."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from shared.journey.model.transition import Transition

if TYPE_CHECKING:
    from shared.journey.model.journey import Journey

# Keys a webhook's `fields` may select; `traits.<name>` selects one trait.
PAYLOAD_FIELDS = (
    "transition_id",
    "journey",
    "journey_version",
    "contact",
    "from",
    "to",
    "at",
    "cause",
    "rule",
    "reason",
    "traits",
    "first_touch",
    "last_touch",
)


@dataclass(frozen=True)
class StageEntered:
    stage: str


@dataclass(frozen=True)
class TransitionBetween:
    from_stage: str
    to_stage: str


@dataclass(frozen=True)
class RuleFired:
    rule: str


@dataclass(frozen=True)
class ContactsMerged:
    """`on: {contact_merged: true}`: an id was merged into a known contact (the stager's
    contact.merged record). It belongs to no journey's stages, so it never matches a transition:
    `merge_webhooks` gathers these over all journeys."""


Trigger: TypeAlias = StageEntered | TransitionBetween | RuleFired | ContactsMerged


@dataclass(frozen=True)
class WebhookTarget:
    """Where to deliver; the secret is named (env var or file), never stored in the journey."""

    url: str
    secret_env: str | None = None
    secret_file: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    fields: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Action:
    on: Trigger
    webhooks: tuple[WebhookTarget, ...]

    def matches(self, transition: Transition) -> bool:
        trigger = self.on
        if isinstance(trigger, StageEntered):
            return transition.to_stage == trigger.stage
        if isinstance(trigger, TransitionBetween):
            return (
                transition.from_stage == trigger.from_stage
                and transition.to_stage == trigger.to_stage
            )
        if isinstance(trigger, RuleFired):
            return transition.rule_id == trigger.rule
        return False


def actions_for(journey: Journey, transition: Transition) -> list[Action]:
    """The journey's actions this transition triggers, in file order."""
    return [action for action in journey.actions if action.matches(transition)]


def webhooks_for(journey: Journey, transition: Transition) -> list[WebhookTarget]:
    """Webhook targets to deliver this transition to, one per URL (the first action's wins).

    Two actions aimed at the same URL would otherwise send the receiver the same transition
    twice under one delivery id.
    """
    targets: dict[str, WebhookTarget] = {}
    for action in actions_for(journey, transition):
        for target in action.webhooks:
            targets.setdefault(target.url, target)
    return list(targets.values())


def delivery_id(transition: Transition, target: WebhookTarget) -> str:
    """Stable `webhook-id` for one transition to one URL, identical on every retry and replay."""
    return _derived_id(transition.transition_id, target)


def merge_webhooks(journeys: Iterable[Journey]) -> list[tuple[str, WebhookTarget]]:
    """Where a merge of two ids is delivered: one target per URL over every journey with an
    `on: {contact_merged: true}` action, each with the id of the journey that names it first.

    A merge belongs to the person, not to one journey, so journeys are taken by id (the same
    answer whatever order they were loaded in) and, within one, actions in file order; the first
    action naming a URL gives its settings, as in `webhooks_for`.
    """
    targets: dict[str, tuple[str, WebhookTarget]] = {}
    for journey in sorted(journeys, key=lambda j: j.id):
        for action in journey.actions:
            if isinstance(action.on, ContactsMerged):
                for target in action.webhooks:
                    targets.setdefault(target.url, (journey.id, target))
    return list(targets.values())


def merge_delivery_id(merge_id: str, target: WebhookTarget) -> str:
    """Stable `webhook-id` for one merge (its `merge_id`, a UUID) to one URL."""
    return _derived_id(merge_id, target)


def _derived_id(record_id: str, target: WebhookTarget) -> str:
    return f"msg_{uuid.uuid5(uuid.UUID(record_id), target.url).hex}"
