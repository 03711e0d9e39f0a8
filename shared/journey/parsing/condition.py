"""Reading conditions (`when:`, `entry:`) from located YAML into the condition tree."""

from __future__ import annotations

from typing import Any

from shared.journey.model.condition import (
    OPERATORS,
    AllOf,
    AnyOf,
    Condition,
    Count,
    EventMatch,
    Filter,
    InactiveFor,
    InStageFor,
    Not,
    Score,
    Test,
    Traits,
    Weight,
)
from shared.journey.model.touchpoint import TOUCHPOINT_TYPES
from shared.journey.parsing.reader import Reader
from shared.journey.parsing.yaml_source import Node

EVENT_KEYS = ("event", "type", "name", "channel", "properties")
COMBINATOR_KEYS = ("all", "any", "not")
CONDITION_KEYS = (
    *EVENT_KEYS,
    "count",
    "score",
    "inactive_for",
    "in_stage_for",
    "traits",
    *COMBINATOR_KEYS,
)
MAX_COUNT = 1000
_SCALAR = (str, int, float, bool)


class ConditionReader:
    """Reads the conditions of one rule (or the entry), numbering its counts and scores."""

    def __init__(self, reader: Reader, owner: str, key_prefix: str) -> None:
        self.reader = reader
        self.owner = owner
        self.key_prefix = key_prefix
        self._accumulators = 0

    def read(self, node: Node, field: str, inside: str | None = None) -> Condition | None:
        """`inside` names the count or score whose `matching` this is (event keys only)."""
        allowed = (*EVENT_KEYS, *COMBINATOR_KEYS) if inside else CONDITION_KEYS
        what = f"a condition inside a {inside}" if inside else "a condition"
        values = self.reader.mapping(node, field, f"{what} in {self.owner}", allowed)
        if values is None:
            return None
        if not values:
            self.reader.problem(node, field, f"the condition in {self.owner} is empty")
            return None
        parts: list[Condition | None] = []
        if any(key in values for key in EVENT_KEYS):
            parts.append(self._event(values, field))
        for key, child in values.items():
            if key in EVENT_KEYS or key not in allowed:
                continue
            parts.append(self._part(key, child, f"{field}.{key}", inside))
        if not parts or None in parts:
            return None
        found = [p for p in parts if p is not None]
        return found[0] if len(found) == 1 else AllOf(tuple(found))

    def _part(self, key: str, node: Node, field: str, inside: str | None) -> Condition | None:
        if key in ("all", "any"):
            items = self.reader.items(node, field, f"'{key}' in {self.owner}")
            children = [self.read(item, f"{field}[{i}]", inside) for i, item in enumerate(items)]
            if not items or None in children:
                return None
            found = tuple(c for c in children if c is not None)
            return AllOf(found) if key == "all" else AnyOf(found)
        if key == "not":
            child = self.read(node, field, inside)
            return Not(child) if child is not None else None
        if key in ("inactive_for", "in_stage_for"):
            duration = self.reader.duration(node, field, f"'{key}' in {self.owner}")
            if duration is None:
                return None
            return InactiveFor(duration) if key == "inactive_for" else InStageFor(duration)
        if key == "traits":
            filters = self._filters(node, field, "trait")
            return Traits(filters) if filters is not None else None
        if key == "count":
            return self._count(node, field)
        return self._score(node, field)

    def _event(self, values: dict[str, Node], field: str) -> EventMatch | None:
        ok = True
        picked: dict[str, tuple[str, ...]] = {}
        for key in ("event", "name", "channel", "type"):
            if key in values:
                found = self.reader.texts(values[key], f"{field}.{key}", f"'{key}' in {self.owner}")
                if found is None:
                    ok = False
                    continue
                picked[key] = found
        types = picked.get("type", ())
        for kind in types:
            if kind not in TOUCHPOINT_TYPES:
                self.reader.problem(
                    values["type"],
                    f"{field}.type",
                    f"'{kind}' in {self.owner} is not a touchpoint type; use one of: "
                    f"{', '.join(TOUCHPOINT_TYPES)}",
                )
                ok = False
        properties: tuple[Filter, ...] | None = ()
        if "properties" in values:
            properties = self._filters(values["properties"], f"{field}.properties", "property")
        if not ok or properties is None:
            return None
        return EventMatch(
            events=picked.get("event", ()),
            types=types,
            names=picked.get("name", ()),
            channels=tuple(c.lower() for c in picked.get("channel", ())),
            properties=properties,
        )

    def _filters(self, node: Node, field: str, kind: str) -> tuple[Filter, ...] | None:
        if not node.is_mapping or not node.value:
            self.reader.problem(
                node, field, f"{kind} filters in {self.owner} should be 'name: value' settings"
            )
            return None
        filters = [
            self._filter(name, child, f"{field}.{name}", kind, node.key_line(name))
            for name, child in node.value.items()
        ]
        if None in filters:
            return None
        return tuple(f for f in filters if f is not None)

    def _filter(self, name: str, node: Node, field: str, kind: str, line: int) -> Filter | None:
        path = tuple(name.split("."))
        subject = f"{kind} '{name}' in {self.owner}"
        if node.is_mapping:
            if not node.value:
                self.reader.problem(node, field, f"{subject} has no operator", line)
                return None
            tests = [
                self._test(op, operand, f"{field}.{op}", subject, node.key_line(op))
                for op, operand in node.value.items()
            ]
            if None in tests:
                return None
            return Filter(path, tuple(t for t in tests if t is not None))
        if node.is_list:
            test = self._test("in", node, field, subject, line)
        elif node.value is None:
            self.reader.problem(
                node,
                field,
                f"{subject} has no value; to test that it is missing write 'exists: false'",
                line,
            )
            return None
        else:
            test = self._test("equals", node, field, subject, line)
        return Filter(path, (test,)) if test is not None else None

    def _test(self, op: str, node: Node, field: str, subject: str, line: int) -> Test | None:
        value: Any = node.plain()
        problem: str | None = None
        if op not in OPERATORS:
            problem = f"'{op}' is not an operator for {subject}; use one of: {', '.join(OPERATORS)}"
        elif op == "in" and not (
            isinstance(value, list) and value and all(isinstance(v, _SCALAR) for v in value)
        ):
            problem = f"'in' for {subject} needs a list of values"
        elif op == "exists" and not isinstance(value, bool):
            problem = f"'exists' for {subject} should be true or false"
        elif op in ("gt", "gte", "lt", "lte") and (
            not isinstance(value, int | float) or isinstance(value, bool)
        ):
            problem = f"'{op}' for {subject} needs a number, got {value!r}"
        elif op in ("equals", "contains") and not isinstance(value, _SCALAR):
            problem = f"'{op}' for {subject} needs a single value"
        if problem:
            self.reader.problem(node, field, problem, line)
            return None
        return Test(op, tuple(value) if op == "in" else value)

    def _next_key(self) -> str:
        key = f"{self.key_prefix}/{self._accumulators}"
        self._accumulators += 1
        return key

    def _count(self, node: Node, field: str) -> Count | None:
        what = f"the count in {self.owner}"
        values = self.reader.mapping(
            node, field, what, ("matching", "at_least", "within"), required=("at_least",)
        )
        if values is None:
            return None
        key = self._next_key()
        matching: Condition | None = EventMatch()
        if "matching" in values:
            matching = self.read(values["matching"], f"{field}.matching", "count")
        at_least = None
        if "at_least" in values:
            at_least = self.reader.integer(values["at_least"], f"{field}.at_least", what, 1)
            if at_least is not None and at_least > MAX_COUNT:
                self.reader.problem(
                    values["at_least"], f"{field}.at_least", f"{what} can be at most {MAX_COUNT}"
                )
                at_least = None
        within = None
        if "within" in values:
            within = self.reader.duration(
                values["within"], f"{field}.within", f"'within' in {what}"
            )
            if within is None:
                return None
        if matching is None or at_least is None:
            return None
        return Count(key, matching, at_least, within)

    def _score(self, node: Node, field: str) -> Score | None:
        what = f"the score in {self.owner}"
        values = self.reader.mapping(
            node, field, what, ("weights", "at_least", "half_life"), ("weights", "at_least")
        )
        if values is None:
            return None
        key = self._next_key()
        weights: list[Weight | None] = []
        if "weights" in values:
            items = self.reader.items(values["weights"], f"{field}.weights", f"weights of {what}")
            weights = [self._weight(item, f"{field}.weights[{i}]") for i, item in enumerate(items)]
        at_least = None
        if "at_least" in values:
            at_least = self.reader.number(values["at_least"], f"{field}.at_least", what)
            if at_least is not None and at_least <= 0:
                self.reader.problem(
                    values["at_least"], f"{field}.at_least", f"{what} needs a threshold above 0"
                )
                at_least = None
        half_life = None
        if "half_life" in values:
            half_life = self.reader.duration(
                values["half_life"], f"{field}.half_life", f"'half_life' in {what}"
            )
            if half_life is None:
                return None
        if not weights or None in weights or at_least is None:
            return None
        return Score(key, tuple(w for w in weights if w is not None), at_least, half_life)

    def _weight(self, node: Node, field: str) -> Weight | None:
        what = f"a weight of the score in {self.owner}"
        values = self.reader.mapping(node, field, what, ("matching", "points"), ("points",))
        if values is None:
            return None
        matching: Condition | None = EventMatch()
        if "matching" in values:
            matching = self.read(values["matching"], f"{field}.matching", "score")
        points = None
        if "points" in values:
            points = self.reader.number(values["points"], f"{field}.points", what)
        if matching is None or points is None:
            return None
        return Weight(matching, points)
