"""Polku's journey engine: journey definitions, rules and the pure per-contact state machine.

Services use only what is exported here (a ruff rule, TID251 in pyproject.toml, refuses imports
from the subpackages outside the engine); docs/journeys.md says what behaviour it guarantees.
Inside, three subpackages by what the code is:

- `model/`: the vocabulary as values (Journey, Stage, Rule, Condition, Action, ContactState,
  Touchpoint, Transition, Step, TimerTick in tick.py) and the errors;
- `parsing/`: from YAML to a Journey (loader, reader, journey/condition/action parsers,
  durations, built-in templates, JSON schema, plain-English descriptions);
- `runtime/`: the state machine (engine.advance, compiled rules, evaluation, evidence,
  channels, timers.py: when a timer rule is due, replay, merge: two ids' histories as one).

No module here does I/O beyond reading journey files; turning messages into bytes and back is
shared/wire's job.
"""

from shared.journey.model.action import (
    Action,
    ContactsMerged,
    RuleFired,
    StageEntered,
    TransitionBetween,
    WebhookTarget,
    actions_for,
    delivery_id,
    merge_delivery_id,
    merge_webhooks,
    webhooks_for,
)
from shared.journey.model.condition import Condition
from shared.journey.model.errors import InvalidTouchpoint, JourneyError, StateMismatch
from shared.journey.model.journey import Journey
from shared.journey.model.problem import Problem
from shared.journey.model.rule import Rule
from shared.journey.model.stage import Labels, Stage
from shared.journey.model.state import ContactState, ScoreTotal
from shared.journey.model.step import Step
from shared.journey.model.tick import TimerTick
from shared.journey.model.touchpoint import TOUCHPOINT_TYPES, Touch, Touchpoint, parse_time
from shared.journey.model.transition import (
    Transition,
    merge_cause,
    merged_id,
    timer_cause,
    timer_rule,
)
from shared.journey.parsing.describe import describe
from shared.journey.parsing.durations import parse_duration
from shared.journey.parsing.loader import (
    check_yaml,
    journey_from_yaml,
    load_journey,
    load_journeys,
    load_template,
    validate_path,
)
from shared.journey.parsing.schema import json_schema
from shared.journey.parsing.templates import template_ids
from shared.journey.runtime.channel import derive_channel
from shared.journey.runtime.engine import advance
from shared.journey.runtime.merge import History, in_event_order, merge
from shared.journey.runtime.replay import replay, run_timers
from shared.journey.runtime.timers import next_deadline

__all__ = [
    "TOUCHPOINT_TYPES",
    "Action",
    "Condition",
    "ContactState",
    "ContactsMerged",
    "History",
    "InvalidTouchpoint",
    "Journey",
    "JourneyError",
    "Labels",
    "Problem",
    "Rule",
    "RuleFired",
    "ScoreTotal",
    "Stage",
    "StageEntered",
    "StateMismatch",
    "Step",
    "TimerTick",
    "Touch",
    "Touchpoint",
    "Transition",
    "TransitionBetween",
    "WebhookTarget",
    "actions_for",
    "advance",
    "check_yaml",
    "delivery_id",
    "derive_channel",
    "describe",
    "in_event_order",
    "journey_from_yaml",
    "json_schema",
    "load_journey",
    "load_journeys",
    "load_template",
    "merge",
    "merge_cause",
    "merge_delivery_id",
    "merge_webhooks",
    "merged_id",
    "next_deadline",
    "parse_duration",
    "parse_time",
    "replay",
    "run_timers",
    "template_ids",
    "timer_cause",
    "timer_rule",
    "validate_path",
    "webhooks_for",
]
