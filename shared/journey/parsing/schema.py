"""JSON Schema of journey files, for editor completion (e.g. the YAML language server).

The loader's own checks are stricter (stage references, duplicate ids, templates); the schema
describes the shape so editors can complete keys and flag typos as they are written.
"""

from __future__ import annotations

from typing import Any

from shared.journey.model.action import PAYLOAD_FIELDS
from shared.journey.model.condition import OPERATORS
from shared.journey.model.touchpoint import TOUCHPOINT_TYPES
from shared.journey.parsing.action import RESERVED_HEADERS
from shared.journey.parsing.durations import DURATION_HINT
from shared.journey.parsing.templates import template_ids

SCHEMA_ID = "https://polku.dev/schemas/journey.json"


def json_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Polku journey",
        "description": "A customer journey: stages, the rules that move contacts between them, "
        "and the webhooks fired on transitions.",
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "version", "labels"],
        "properties": {
            "id": {"$ref": "#/$defs/identifier", "description": "Unique id of the journey."},
            "version": {
                "type": "integer",
                "minimum": 1,
                "description": "Raise it when the rules change; contacts keep their stages.",
            },
            "labels": {"$ref": "#/$defs/labels"},
            "description": {"type": "string"},
            "template": {
                "enum": list(template_ids()),
                "description": "Built-in template whose stages and rules this journey extends.",
            },
            "entry": {
                "$ref": "#/$defs/condition",
                "description": "Who enters the journey; absent means every contact.",
            },
            "stages": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/stage"}},
            "rules": {"type": "array", "items": {"$ref": "#/$defs/rule"}},
            "actions": {"type": "array", "items": {"$ref": "#/$defs/action"}},
            "retired_stages": {
                "type": "object",
                "description": "Stages removed in this version, mapped to where their contacts go.",
                "additionalProperties": {"type": "string"},
            },
        },
        "$defs": _definitions(),
    }


def _definitions() -> dict[str, Any]:
    one_or_many = {
        "oneOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
        ]
    }
    return {
        "identifier": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"},
        "duration": {
            "type": "string",
            "pattern": "^([0-9]+[smhdw])+$",
            "description": DURATION_HINT,
        },
        "labels": {
            "type": "object",
            "additionalProperties": False,
            "required": ["fi", "en"],
            "properties": {"fi": {"type": "string"}, "en": {"type": "string"}},
        },
        "stage": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id"],
            "properties": {
                "id": {"$ref": "#/$defs/identifier"},
                "labels": {"$ref": "#/$defs/labels"},
            },
        },
        "rule": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id"],
            "properties": {
                "id": {"$ref": "#/$defs/identifier"},
                "to": {"type": "string", "description": "Stage the contact moves to."},
                "from": {
                    "oneOf": [one_or_many, {"type": "null"}],
                    "description": "Stages the rule applies in; absent means any stage.",
                },
                "when": {"$ref": "#/$defs/condition"},
                "reason": {"type": "string"},
            },
        },
        "condition": _condition(one_or_many),
        "eventCondition": _event_condition(one_or_many),
        "filters": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {"$ref": "#/$defs/filter"},
        },
        "filter": {
            "oneOf": [
                {"type": ["string", "number", "boolean"]},
                {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": ["string", "number", "boolean"]},
                },
                {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": False,
                    "properties": {
                        "equals": {"type": ["string", "number", "boolean"]},
                        "in": {"type": "array", "minItems": 1},
                        "exists": {"type": "boolean"},
                        "gt": {"type": "number"},
                        "gte": {"type": "number"},
                        "lt": {"type": "number"},
                        "lte": {"type": "number"},
                        "contains": {"type": ["string", "number", "boolean"]},
                    },
                    "propertyNames": {"enum": list(OPERATORS)},
                },
            ]
        },
        "action": {
            "type": "object",
            "additionalProperties": False,
            "required": ["on", "webhooks"],
            "properties": {
                "on": {
                    "type": "object",
                    "minProperties": 1,
                    "maxProperties": 1,
                    "additionalProperties": False,
                    "properties": {
                        "stage_entered": {"type": "string"},
                        "rule": {"type": "string"},
                        "contact_merged": {"const": True},
                        "transition": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["from", "to"],
                            "properties": {"from": {"type": "string"}, "to": {"type": "string"}},
                        },
                    },
                },
                "webhooks": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/webhook"}},
            },
        },
        "webhook": {
            "type": "object",
            "additionalProperties": False,
            "required": ["url"],
            "oneOf": [{"required": ["secret_env"]}, {"required": ["secret_file"]}],
            "properties": {
                "url": {"type": "string", "pattern": "^(https?://|\\$\\{)"},
                "secret_env": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                "secret_file": {"type": "string"},
                "headers": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "number"]},
                    "propertyNames": {"not": {"enum": list(RESERVED_HEADERS)}},
                },
                "fields": {
                    "type": "array",
                    "items": {
                        "anyOf": [
                            {"enum": list(PAYLOAD_FIELDS)},
                            {"type": "string", "pattern": "^traits\\..+"},
                        ]
                    },
                },
            },
        },
    }


def _event_properties(one_or_many: dict[str, Any]) -> dict[str, Any]:
    return {
        "event": {**one_or_many, "description": "Track event name(s), e.g. Demo Requested."},
        "type": {
            "oneOf": [
                {"enum": list(TOUCHPOINT_TYPES)},
                {"type": "array", "minItems": 1, "items": {"enum": list(TOUCHPOINT_TYPES)}},
            ]
        },
        "name": {**one_or_many, "description": "Page or screen name(s)."},
        "channel": {**one_or_many, "description": "Derived channel, e.g. search, social, email."},
        "properties": {"$ref": "#/$defs/filters"},
    }


def _event_condition(one_or_many: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            **_event_properties(one_or_many),
            "all": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/eventCondition"}},
            "any": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/eventCondition"}},
            "not": {"$ref": "#/$defs/eventCondition"},
        },
    }


def _condition(one_or_many: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            **_event_properties(one_or_many),
            "count": {
                "type": "object",
                "additionalProperties": False,
                "required": ["at_least"],
                "properties": {
                    "matching": {"$ref": "#/$defs/eventCondition"},
                    "at_least": {"type": "integer", "minimum": 1, "maximum": 1000},
                    "within": {"$ref": "#/$defs/duration"},
                },
            },
            "score": {
                "type": "object",
                "additionalProperties": False,
                "required": ["weights", "at_least"],
                "properties": {
                    "weights": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["points"],
                            "properties": {
                                "matching": {"$ref": "#/$defs/eventCondition"},
                                "points": {"type": "number"},
                            },
                        },
                    },
                    "at_least": {"type": "number", "exclusiveMinimum": 0},
                    "half_life": {"$ref": "#/$defs/duration"},
                },
            },
            "inactive_for": {"$ref": "#/$defs/duration"},
            "in_stage_for": {"$ref": "#/$defs/duration"},
            "traits": {"$ref": "#/$defs/filters"},
            "all": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/condition"}},
            "any": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/condition"}},
            "not": {"$ref": "#/$defs/condition"},
        },
    }
