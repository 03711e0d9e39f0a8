"""Reading one journey definition from located YAML, reporting every problem with its line."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from shared.journey.model.condition import Condition, is_timed
from shared.journey.model.journey import Journey
from shared.journey.model.rule import Rule
from shared.journey.model.stage import Labels, Stage
from shared.journey.parsing.action import read_actions
from shared.journey.parsing.condition import ConditionReader
from shared.journey.parsing.reader import Reader
from shared.journey.parsing.templates import extend, template_document, template_ids
from shared.journey.parsing.yaml_source import Node

JOURNEY_KEYS = (
    "id",
    "version",
    "labels",
    "description",
    "template",
    "entry",
    "stages",
    "rules",
    "actions",
    "retired_stages",
)
RULE_KEYS = ("id", "to", "from", "when", "reason")
ENTRY_KEY_PREFIX = "(entry)"


def read_journey(reader: Reader, root: Node, *, is_template: bool = False) -> Journey | None:
    values = reader.mapping(root, "", "a journey", JOURNEY_KEYS, ("id", "version", "labels"))
    if values is None:
        return None
    journey_id = _get(values, "id", lambda n: reader.identifier(n, "id", "the journey id"))
    version = _get(values, "version", lambda n: reader.integer(n, "version", "version", 1))
    labels = _get(values, "labels", lambda n: _labels(reader, n, "labels", "the journey"))
    description = _get(
        values, "description", lambda n: reader.text(n, "description", "the description")
    )
    template_id = None
    if "template" in values:
        template_id, values = _with_template(reader, values, is_template)
    if "stages" not in values:
        reader.problem(
            root, "stages", "a journey needs 'stages' (or a 'template' to take them from)"
        )
        return None
    stages = _stages(reader, values["stages"])
    # References are checked against every id written, even if a stage or rule has problems of
    # its own, so one mistake does not hide (or cause) a cascade of others.
    stage_ids = _ids(values["stages"])
    rules = _rules(reader, values["rules"], stage_ids) if "rules" in values else ()
    rule_ids = _ids(values["rules"]) if "rules" in values else ()
    entry = _entry(reader, values["entry"]) if "entry" in values else None
    actions = (
        read_actions(reader, values["actions"], stage_ids, rule_ids) if "actions" in values else ()
    )
    retired = (
        _retired(reader, values["retired_stages"], stage_ids) if "retired_stages" in values else {}
    )
    if (
        reader.problems
        or journey_id is None
        or version is None
        or labels is None
        or stages is None
        or rules is None
        or actions is None
        or retired is None
    ):
        return None
    return Journey(
        id=journey_id,
        version=version,
        labels=labels,
        stages=stages,
        rules=rules,
        actions=actions,
        entry=entry,
        template=template_id,
        retired_stages=retired,
        description=description,
        source=root.file,
    )


_T = TypeVar("_T")


def _get(values: dict[str, Node], key: str, read: Callable[[Node], _T | None]) -> _T | None:
    return read(values[key]) if key in values else None


def _with_template(
    reader: Reader, values: dict[str, Node], is_template: bool
) -> tuple[str | None, dict[str, Node]]:
    node = values["template"]
    if is_template:
        reader.problem(node, "template", "a template cannot itself use a template")
        return None, values
    template_id = reader.text(node, "template", "the template")
    if template_id is None:
        return None, values
    if template_id not in template_ids():
        reader.problem(
            node,
            "template",
            f"there is no built-in template '{template_id}'; choose one of: "
            f"{', '.join(template_ids())}",
        )
        return None, values
    document, problems = template_document(template_id)
    reader.problems.extend(problems)
    if document is None or not document.is_mapping:
        return None, values
    return template_id, extend(document.value, values)


def _labels(reader: Reader, node: Node, field: str, owner: str) -> Labels | None:
    what = f"the labels of {owner}"
    values = reader.mapping(node, field, what, ("fi", "en"), ("fi", "en"))
    if values is None or "fi" not in values or "en" not in values:
        return None
    fi = reader.text(values["fi"], f"{field}.fi", f"the Finnish label of {owner}")
    en = reader.text(values["en"], f"{field}.en", f"the English label of {owner}")
    return Labels(fi, en) if fi and en else None


def _stages(reader: Reader, node: Node) -> tuple[Stage, ...] | None:
    items = reader.items(node, "stages", "'stages'")
    stages: list[Stage | None] = []
    for i, item in enumerate(items):
        field = f"stages[{i}]"
        peeked = _item_id(item)
        what = f"stage '{peeked}'" if peeked else "a stage"
        values = reader.mapping(item, field, what, ("id", "labels"), ("id", "labels"))
        if values is None or "id" not in values or "labels" not in values:
            stages.append(None)
            continue
        stage_id = reader.identifier(values["id"], f"{field}.id", "the stage id")
        owner = f"stage '{stage_id}'" if stage_id else "a stage"
        labels = _labels(reader, values["labels"], f"{field}.labels", owner)
        stages.append(Stage(stage_id, labels) if stage_id and labels else None)
    _no_duplicates(reader, items, "stage", "stages")
    if not items or None in stages:
        return None
    return tuple(s for s in stages if s is not None)


def _rules(reader: Reader, node: Node, stage_ids: tuple[str, ...]) -> tuple[Rule, ...] | None:
    items = reader.items(node, "rules", "'rules'", allow_empty=True)
    rules = [_rule(reader, item, i, stage_ids) for i, item in enumerate(items)]
    _no_duplicates(reader, items, "rule", "rules")
    if None in rules:
        return None
    return tuple(r for r in rules if r is not None)


def _rule(reader: Reader, node: Node, index: int, stage_ids: tuple[str, ...]) -> Rule | None:
    peeked = _item_id(node)
    field = f"rules[{peeked or index}]"
    owner = f"rule '{peeked}'" if peeked else f"rule number {index + 1}"
    values = reader.mapping(node, field, owner, RULE_KEYS, ("id", "to", "when"))
    if values is None:
        return None
    rule_id = _get(values, "id", lambda n: reader.identifier(n, f"{field}.id", "the rule id"))
    to = _get(values, "to", lambda n: _stage_ref(reader, n, f"{field}.to", owner, stage_ids))
    from_stages: tuple[str, ...] | None = None
    from_ok = True
    if "from" in values and values["from"].value is not None:
        found = [
            _stage_ref(reader, n, f"{field}.from", owner, stage_ids)
            for n in _as_list(values["from"])
        ]
        from_ok = None not in found and bool(found)
        from_stages = tuple(s for s in found if s is not None)
        if from_ok and to is not None and from_stages == (to,):
            reader.problem(
                values["from"],
                f"{field}.from",
                f"{owner} moves contacts from '{to}' to '{to}', so it can never fire",
            )
            from_ok = False
    when: Condition | None = None
    if "when" in values:
        when = ConditionReader(reader, owner, rule_id or f"rule-{index}").read(
            values["when"], f"{field}.when"
        )
    reason = _get(values, "reason", lambda n: reader.text(n, f"{field}.reason", "the reason"))
    if rule_id is None or to is None or when is None or not from_ok:
        return None
    return Rule(rule_id, to, when, from_stages, reason)


def _ids(node: Node) -> tuple[str, ...]:
    items: list[Node] = node.value if node.is_list else []
    return tuple(dict.fromkeys(i for i in map(_item_id, items) if i is not None))


def _item_id(node: Node) -> str | None:
    if node.is_mapping and "id" in node.value and isinstance(node.value["id"].value, str):
        return str(node.value["id"].value)
    return None


def _as_list(node: Node) -> list[Node]:
    return list(node.value) if node.is_list else [node]


def _stage_ref(
    reader: Reader, node: Node, field: str, owner: str, stage_ids: tuple[str, ...]
) -> str | None:
    stage = reader.text(node, field, f"a stage in {owner}")
    if stage is None:
        return None
    if stage not in stage_ids:
        reader.problem(
            node,
            field,
            f"stage '{stage}' in {owner} (line {node.line}) is not one of this journey's stages: "
            f"{', '.join(dict.fromkeys(stage_ids))}",
        )
        return None
    return stage


def _entry(reader: Reader, node: Node) -> Condition | None:
    condition = ConditionReader(reader, "the entry condition", ENTRY_KEY_PREFIX).read(node, "entry")
    if condition is not None and is_timed(condition):
        reader.problem(
            node,
            "entry",
            "the entry condition cannot use inactive_for or in_stage_for: a "
            "contact outside the journey has no stage to be in or inactive in",
        )
        return None
    return condition


def _retired(reader: Reader, node: Node, stage_ids: tuple[str, ...]) -> dict[str, str] | None:
    what = "retired_stages"
    if not node.is_mapping:
        reader.problem(node, what, "retired_stages should map old stage ids to current ones")
        return None
    retired: dict[str, str] = {}
    ok = True
    for old, child in node.value.items():
        field = f"{what}.{old}"
        if old in stage_ids:
            reader.problem(
                node,
                field,
                f"'{old}' is still a stage of this journey, so it is not retired",
                node.key_line(old),
            )
            ok = False
            continue
        owner = f"retired stage '{old}'"
        target = _stage_ref(reader, child, field, owner, stage_ids)
        if target is None:
            ok = False
            continue
        retired[old] = target
    return retired if ok else None


def _no_duplicates(reader: Reader, items: list[Node], kind: str, field: str) -> None:
    first_line: dict[str, int] = {}
    for i, item in enumerate(items):
        if not item.is_mapping or "id" not in item.value:
            continue
        id_node = item.value["id"]
        if not isinstance(id_node.value, str):
            continue
        if id_node.value in first_line:
            reader.problem(
                id_node,
                f"{field}[{i}].id",
                f"{kind} id '{id_node.value}' is used twice (first on line "
                f"{first_line[id_node.value]}); give each {kind} its own id",
            )
        else:
            first_line[id_node.value] = id_node.line
