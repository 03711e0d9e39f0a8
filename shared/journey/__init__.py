"""Polku's journey engine: journey definitions, rules and the pure per-contact state machine.

Services use only what is exported here; see docs/journeys.md for the behaviour it guarantees.
"""

from shared.journey.action import (
    Action,
    RuleFired,
    StageEntered,
    TransitionBetween,
    WebhookTarget,
    actions_for,
    delivery_id,
    webhooks_for,
)
from shared.journey.channel import derive_channel
from shared.journey.condition import Condition
from shared.journey.describe import describe
from shared.journey.durations import parse_duration
from shared.journey.engine import advance
from shared.journey.errors import InvalidTouchpoint, JourneyError, StateMismatch
from shared.journey.journey import Journey
from shared.journey.loader import (
    check_yaml,
    journey_from_yaml,
    load_journey,
    load_journeys,
    load_template,
    validate_path,
)
from shared.journey.problem import Problem
from shared.journey.rule import Rule
from shared.journey.schema import json_schema
from shared.journey.simulate import replay, run_timers
from shared.journey.stage import Labels, Stage
from shared.journey.state import ContactState, ScoreTotal, Touch
from shared.journey.step import Step
from shared.journey.templates import template_ids
from shared.journey.timer import TimerTick
from shared.journey.timers import next_deadline
from shared.journey.touchpoint import TOUCHPOINT_TYPES, Touchpoint, parse_time
from shared.journey.transition import Transition, timer_cause, timer_rule

__all__ = [
    "TOUCHPOINT_TYPES",
    "Action",
    "Condition",
    "ContactState",
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
    "journey_from_yaml",
    "json_schema",
    "load_journey",
    "load_journeys",
    "load_template",
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
