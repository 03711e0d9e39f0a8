"""Reading journey YAML into a tree that remembers the file and line of every value.

Booleans are YAML 1.2 style (only true/false), and dates stay strings: `on:` is a key of actions
and `no`/`yes` are ordinary words in property filters, not booleans.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from shared.journey.model.problem import Problem

_BOOL = "tag:yaml.org,2002:bool"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _JourneyYamlLoader(yaml.SafeLoader):
    pass


_JourneyYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_JourneyYamlLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass(frozen=True)
class Node:
    """A YAML value: a dict of Nodes, a list of Nodes, or a plain scalar, with its location."""

    value: Any
    file: str
    line: int
    # For mappings, the line of each key (a block value starts on the line after its key).
    key_lines: dict[str, int] = field(default_factory=dict)

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_list(self) -> bool:
        return isinstance(self.value, list)

    def key_line(self, key: str) -> int:
        return self.key_lines.get(key, self.line)

    def plain(self) -> Any:
        """The value without locations, as yaml.safe_load would give it."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


def load_yaml(text: str, file: str) -> tuple[Node | None, list[Problem]]:
    """Parse one YAML document; syntax errors and duplicate keys come back as problems."""
    problems: list[Problem] = []
    loader = _JourneyYamlLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, [Problem(file, 1, "(file)", "the file is empty")]
        return _convert(root, loader, file, problems), problems
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 1
        what = " ".join(str(part) for part in (e.context, e.problem) if part)
        return None, [Problem(file, line, "(yaml)", f"this is not valid YAML: {what}")]
    except yaml.YAMLError as e:
        return None, [Problem(file, 1, "(yaml)", f"this is not valid YAML: {e}")]
    finally:
        loader.dispose()


def _convert(
    node: yaml.Node, loader: _JourneyYamlLoader, file: str, problems: list[Problem]
) -> Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        values: dict[str, Node] = {}
        key_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            # Keys are taken verbatim, so `on:` stays the string "on".
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            key_line = key_node.start_mark.line + 1
            if key in values:
                problems.append(
                    Problem(
                        file,
                        key_line,
                        key,
                        f"'{key}' is written twice in the same place (also on line "
                        f"{key_lines[key]}); keep one",
                    )
                )
                continue
            values[key] = _convert(value_node, loader, file, problems)
            key_lines[key] = key_line
        return Node(values, file, line, key_lines)
    if isinstance(node, yaml.SequenceNode):
        return Node([_convert(item, loader, file, problems) for item in node.value], file, line)
    return Node(loader.construct_object(node, deep=True), file, line)
