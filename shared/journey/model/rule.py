"""A rule: when its condition holds for a contact in one of its `from` stages, move it `to`."""

from __future__ import annotations

from dataclasses import dataclass

from shared.journey.model.condition import Condition, is_timed


@dataclass(frozen=True)
class Rule:
    id: str
    to: str
    when: Condition
    from_stages: tuple[str, ...] | None = None
    reason: str | None = None

    @property
    def timed(self) -> bool:
        """Whether the rule can fire from a timer, with no new touchpoint."""
        return is_timed(self.when)

    def admits(self, stage: str | None) -> bool:
        """Whether a contact in `stage` (None = not yet in the journey) may move by this rule.

        A rule without `from` admits every stage and also decides where an entering contact
        lands; a rule with `from` only applies to contacts already in one of those stages.
        """
        if self.from_stages is None:
            return True
        return stage is not None and stage in self.from_stages
