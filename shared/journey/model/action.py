"""Actions: which webhooks a transition triggers, and what each delivery carries."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
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


Trigger: TypeAlias = StageEntered | TransitionBetween | RuleFired


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
        return transition.rule_id == trigger.rule


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
    return f"msg_{uuid.uuid5(uuid.UUID(transition.transition_id), target.url).hex}"
