"""Type and shape checks on located YAML values, collecting every problem instead of stopping."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from shared.journey.model.problem import Problem
from shared.journey.parsing.durations import DURATION_HINT, parse_duration
from shared.journey.parsing.yaml_source import Node

_IDENTIFIER = re.compile(r"[a-z0-9][a-z0-9_-]*")
IDENTIFIER_HINT = "use lowercase letters, digits, '-' and '_' (e.g. demo-request)"


class Reader:
    """Collects problems while a journey is read; every check returns None when it fails."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.problems: list[Problem] = []
        # What `${NAME}` in a webhook url reads; the loader passes the process environment.
        self.environ: Mapping[str, str] = environ if environ is not None else {}

    def problem(self, node: Node, field: str, message: str, line: int | None = None) -> None:
        self.problems.append(Problem(node.file, line or node.line, field, message))

    def mapping(
        self,
        node: Node,
        field: str,
        what: str,
        allowed: Iterable[str],
        required: Iterable[str] = (),
    ) -> dict[str, Node] | None:
        """A mapping with only `allowed` keys and all `required` ones; unknown keys get a hint."""
        if not node.is_mapping:
            self.problem(node, field, f"{what} should be a set of 'key: value' settings")
            return None
        allowed = tuple(allowed)
        values: dict[str, Node] = node.value
        for key in values:
            if key not in allowed:
                self.problem(
                    node, _join(field, key), _unknown(key, what, allowed), node.key_line(key)
                )
        for key in required:
            if key not in values:
                self.problem(node, _join(field, key), f"'{key}' is missing from {what}")
        return values

    def items(self, node: Node, field: str, what: str, allow_empty: bool = False) -> list[Node]:
        if not node.is_list:
            self.problem(node, field, f"{what} should be a list (lines starting with '- ')")
            return []
        if not node.value and not allow_empty:
            self.problem(node, field, f"{what} should not be empty")
        items: list[Node] = node.value
        return items

    def text(self, node: Node, field: str, what: str) -> str | None:
        if not isinstance(node.value, str) or not node.value.strip():
            self.problem(node, field, f"{what} should be a piece of text, got {_shown(node)}")
            return None
        return node.value

    def identifier(self, node: Node, field: str, what: str) -> str | None:
        text = self.text(node, field, what)
        if text is None:
            return None
        if not _IDENTIFIER.fullmatch(text):
            self.problem(node, field, f"{what} '{text}' is not a valid id; {IDENTIFIER_HINT}")
            return None
        return text

    def texts(self, node: Node, field: str, what: str) -> tuple[str, ...] | None:
        """One text or a list of texts."""
        if isinstance(node.value, list):
            found = [self.text(item, f"{field}[{i}]", what) for i, item in enumerate(node.value)]
            if not found:
                self.problem(node, field, f"{what} should not be an empty list")
                return None
            return tuple(t for t in found if t is not None) if None not in found else None
        text = self.text(node, field, what)
        return (text,) if text is not None else None

    def integer(self, node: Node, field: str, what: str, minimum: int) -> int | None:
        value = node.value
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            self.problem(
                node,
                field,
                f"{what} should be a whole number of at least {minimum}, got {_shown(node)}",
            )
            return None
        return value

    def number(self, node: Node, field: str, what: str) -> float | None:
        value = node.value
        if not isinstance(value, int | float) or isinstance(value, bool):
            self.problem(node, field, f"{what} should be a number, got {_shown(node)}")
            return None
        return float(value)

    def duration(self, node: Node, field: str, what: str) -> timedelta | None:
        if not isinstance(node.value, str):
            self.problem(node, field, f"{what}: {_shown(node)} has no unit; {DURATION_HINT}")
            return None
        try:
            return parse_duration(node.value)
        except ValueError as e:
            self.problem(node, field, f"{what}: {e}")
            return None


def _join(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key


def _unknown(key: str, what: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else f"use one of: {', '.join(allowed)}"
    return f"'{key}' is not a setting of {what}; {hint}"


def _shown(node: Node) -> str:
    value: Any = node.value
    if isinstance(value, dict):
        return "a set of settings"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)
