"""A journey definition: stages, rules, entry condition and actions, ready for the engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from shared.journey.model.action import Action
from shared.journey.model.condition import Accumulator, Condition, accumulators
from shared.journey.model.rule import Rule
from shared.journey.model.stage import Labels, Stage
from shared.journey.runtime.compiled import CompiledJourney, compile_journey


@dataclass(frozen=True)
class Journey:
    id: str
    version: int
    labels: Labels
    stages: tuple[Stage, ...]
    rules: tuple[Rule, ...]
    actions: tuple[Action, ...] = ()
    entry: Condition | None = None
    template: str | None = None
    # Stage ids of earlier versions mapped to the stage their contacts move to.
    retired_stages: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None
    source: str | None = None

    @cached_property
    def stage_ids(self) -> tuple[str, ...]:
        return tuple(stage.id for stage in self.stages)

    @property
    def first_stage(self) -> str:
        return self.stages[0].id

    def stage(self, stage_id: str) -> Stage | None:
        return next((s for s in self.stages if s.id == stage_id), None)

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    @cached_property
    def accumulators(self) -> tuple[Accumulator, ...]:
        """Every count and score in the journey; the engine feeds each touchpoint to all of them."""
        found = list(accumulators(self.entry))
        for rule in self.rules:
            found.extend(accumulators(rule.when))
        return tuple(found)

    @cached_property
    def compiled(self) -> CompiledJourney:
        """The conditions as closures, for the engine (built on first use, once per object)."""
        return compile_journey(self)
