"""The built-in journey templates (stage models from the seeds) and how journeys extend them.

A journey with `template: <id>` inherits the template's stages and rules. Its own stages and
rules override the template's ones with the same id key by key (so a rule can change just its
`when`), and new ones are appended after the template's.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from shared.journey.model.problem import Problem
from shared.journey.parsing.yaml_source import Node, load_yaml

TEMPLATE_DIR = Path(__file__).parent / "templates"


def template_ids() -> tuple[str, ...]:
    return tuple(sorted(path.stem for path in TEMPLATE_DIR.glob("*.yaml")))


def template_path(template_id: str) -> Path:
    return TEMPLATE_DIR / f"{template_id}.yaml"


@cache
def template_document(template_id: str) -> tuple[Node | None, tuple[Problem, ...]]:
    """The template's located YAML; cached because templates ship with the code."""
    path = template_path(template_id)
    node, problems = load_yaml(path.read_text(encoding="utf-8"), _display(path))
    return node, tuple(problems)


def extend(template: dict[str, Node], own: dict[str, Node]) -> dict[str, Node]:
    """The journey's top-level settings with the template's stages and rules merged in."""
    merged = dict(own)
    for key in ("stages", "rules"):
        base = template.get(key)
        if base is None or not base.is_list:
            continue
        mine = own.get(key)
        if mine is None:
            merged[key] = base
        elif mine.is_list:
            merged[key] = Node(_merge_items(base.value, mine.value), mine.file, mine.line)
    return merged


def _merge_items(base: list[Node], own: list[Node]) -> list[Node]:
    merged = list(base)
    positions = {_item_id(item): i for i, item in enumerate(base)}
    overridden: set[str] = set()
    for item in own:
        item_id = _item_id(item)
        if item_id is not None and item_id in positions and item_id not in overridden:
            position = positions[item_id]
            merged[position] = _overlay(merged[position], item)
            overridden.add(item_id)
        else:
            # Unknown ids are appended; a second override of one id is appended too, so the
            # duplicate-id check reports it instead of it silently replacing the first.
            merged.append(item)
    return merged


def _overlay(base: Node, top: Node) -> Node:
    if not (base.is_mapping and top.is_mapping):
        return top
    inherited = dict(base.value)
    if "when" in top.value and "reason" not in top.value:
        # A template's reason explains the template's condition; with a new `when` it would
        # misstate why contacts move, so the generated description is used instead.
        inherited.pop("reason", None)
    return Node({**inherited, **top.value}, top.file, top.line, dict(top.key_lines))


def _item_id(item: Node) -> str | None:
    if item.is_mapping and "id" in item.value and isinstance(item.value["id"].value, str):
        return str(item.value["id"].value)
    return None


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
