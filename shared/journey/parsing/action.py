"""Reading a journey's `actions:` (which webhooks fire on which transitions) from located YAML."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from shared.journey.model.action import (
    PAYLOAD_FIELDS,
    Action,
    ContactsMerged,
    RuleFired,
    StageEntered,
    TransitionBetween,
    Trigger,
    WebhookTarget,
)
from shared.journey.parsing.reader import Reader
from shared.journey.parsing.yaml_source import Node

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# `${NAME}` or `${NAME:-default}` in a webhook url, as in a shell: the value of the environment
# variable NAME (the default when it is unset or empty). One journey file then serves every
# deployment: the example journeys reach `polku dev`'s sink wherever POLKU_DEV_SINK_PORT puts it.
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
# The actions worker sets these itself (Standard Webhooks signing and the JSON body).
RESERVED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature", "content-type")


def read_actions(
    reader: Reader, node: Node, stages: tuple[str, ...], rules: tuple[str, ...]
) -> tuple[Action, ...] | None:
    items = reader.items(node, "actions", "'actions'", allow_empty=True)
    actions = [
        _action(reader, item, f"actions[{i}]", stages, rules) for i, item in enumerate(items)
    ]
    if None in actions:
        return None
    return tuple(a for a in actions if a is not None)


def _action(
    reader: Reader, node: Node, field: str, stages: tuple[str, ...], rules: tuple[str, ...]
) -> Action | None:
    what = "an action"
    values = reader.mapping(node, field, what, ("on", "webhooks"), ("on", "webhooks"))
    if values is None or "on" not in values or "webhooks" not in values:
        return None
    trigger = _trigger(reader, values["on"], f"{field}.on", stages, rules)
    items = reader.items(values["webhooks"], f"{field}.webhooks", "'webhooks' of an action")
    targets = [_webhook(reader, item, f"{field}.webhooks[{i}]") for i, item in enumerate(items)]
    if trigger is None or not targets or None in targets:
        return None
    return Action(trigger, tuple(t for t in targets if t is not None))


def _trigger(
    reader: Reader, node: Node, field: str, stages: tuple[str, ...], rules: tuple[str, ...]
) -> Trigger | None:
    kinds = ("stage_entered", "transition", "rule", "contact_merged")
    values = reader.mapping(node, field, "'on' of an action", kinds)
    if values is None:
        return None
    if len(values) != 1:
        reader.problem(node, field, f"'on' of an action needs exactly one of: {', '.join(kinds)}")
        return None
    kind, child = next(iter(values.items()))
    if kind == "contact_merged":
        if child.value is not True:
            reader.problem(child, f"{field}.contact_merged",
                           "contact_merged takes only 'true' (leave the action out otherwise)")
            return None
        return ContactsMerged()
    if kind == "stage_entered":
        stage = _stage(reader, child, f"{field}.stage_entered", stages)
        return StageEntered(stage) if stage else None
    if kind == "rule":
        rule = reader.text(child, f"{field}.rule", "the rule of an action")
        if rule is not None and rule not in rules:
            reader.problem(
                child,
                f"{field}.rule",
                f"rule '{rule}' in an action is not one of this journey's rules: "
                f"{', '.join(rules) or '(none)'}",
            )
            return None
        return RuleFired(rule) if rule else None
    ends = reader.mapping(
        child, f"{field}.transition", "a transition", ("from", "to"), ("from", "to")
    )
    if ends is None or "from" not in ends or "to" not in ends:
        return None
    source = _stage(reader, ends["from"], f"{field}.transition.from", stages)
    target = _stage(reader, ends["to"], f"{field}.transition.to", stages)
    return TransitionBetween(source, target) if source and target else None


def _stage(reader: Reader, node: Node, field: str, stages: tuple[str, ...]) -> str | None:
    stage = reader.text(node, field, "a stage of an action")
    if stage is not None and stage not in stages:
        reader.problem(
            node,
            field,
            f"stage '{stage}' in an action is not one of this journey's stages: "
            f"{', '.join(dict.fromkeys(stages))}",
        )
        return None
    return stage


def _webhook(reader: Reader, node: Node, field: str) -> WebhookTarget | None:
    what = "a webhook"
    values = reader.mapping(
        node, field, what, ("url", "secret_env", "secret_file", "headers", "fields"), ("url",)
    )
    if values is None:
        return None
    ok = True
    url = _url(reader, values["url"], f"{field}.url") if "url" in values else None
    secret_env = secret_file = None
    if ("secret_env" in values) == ("secret_file" in values):
        reader.problem(
            node,
            field,
            "a webhook needs exactly one of secret_env (the name of an environment "
            "variable holding the signing secret) or secret_file (a file holding it)",
        )
        ok = False
    if "secret_env" in values:
        secret_env = reader.text(values["secret_env"], f"{field}.secret_env", "secret_env")
        if secret_env is not None and not _ENV_NAME.fullmatch(secret_env):
            reader.problem(
                values["secret_env"],
                f"{field}.secret_env",
                f"'{secret_env}' is not an environment variable name (e.g. POLKU_CRM_SECRET)",
            )
            ok = False
    if "secret_file" in values:
        secret_file = reader.text(values["secret_file"], f"{field}.secret_file", "secret_file")
    headers = _headers(reader, values["headers"], f"{field}.headers") if "headers" in values else {}
    fields = _fields(reader, values["fields"], f"{field}.fields") if "fields" in values else ()
    if not ok or url is None or headers is None or fields is None:
        return None
    if (secret_env or secret_file) is None:
        return None
    return WebhookTarget(url, secret_env, secret_file, headers, fields or None)


def _url(reader: Reader, node: Node, field: str) -> str | None:
    """The webhook url with its `${NAME}` references filled in from the environment.

    Problems quote the url as written, never its filled-in form: a variable may hold a token.
    """
    template = reader.text(node, field, "the webhook url")
    if template is None:
        return None
    if "${" in _ENV_REFERENCE.sub("", template):
        reader.problem(node, field, f"'{template}' has a '${{' that does not name an environment "
                       "variable; write ${NAME} or ${NAME:-default}, e.g. "
                       "${POLKU_CRM_URL:-https://crm.example.com}/hooks/polku")
        return None
    unset: list[str] = []

    def value(reference: re.Match[str]) -> str:
        name, default = reference.group(1), reference.group(2)
        found = reader.environ.get(name)
        if found:
            return found
        if default is None:
            unset.append(name)
            return ""
        return default

    url = _ENV_REFERENCE.sub(value, template)
    if unset:
        names = ", ".join(dict.fromkeys(unset))
        reader.problem(node, field, f"the webhook url needs the environment variable {names}, "
                       f"which is not set; set it or give a default: ${{{unset[0]}:-https://...}}")
        return None
    if not _valid_url(url):
        filled = " once its environment variables are filled in" if url != template else ""
        reader.problem(node, field, f"'{template}' is not a web address{filled}; write it like "
                       "https://crm.example.com/hooks/polku")
        return None
    return url


def _valid_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in url


def _headers(reader: Reader, node: Node, field: str) -> dict[str, str] | None:
    if not node.is_mapping:
        reader.problem(node, field, "headers should be 'Name: value' settings")
        return None
    headers: dict[str, str] = {}
    ok = True
    for name, child in node.value.items():
        problem = None
        if not _HEADER_NAME.fullmatch(name):
            problem = f"'{name}' is not a valid header name"
        elif name.lower() in RESERVED_HEADERS:
            problem = f"header '{name}' is set by Polku itself; remove it"
        elif not isinstance(child.value, str | int | float) or isinstance(child.value, bool):
            problem = f"header '{name}' needs a text value"
        if problem:
            reader.problem(node, f"{field}.{name}", problem, node.key_line(name))
            ok = False
        else:
            headers[name] = str(child.value)
    return headers if ok else None


def _fields(reader: Reader, node: Node, field: str) -> tuple[str, ...] | None:
    names = reader.texts(node, field, "a webhook field")
    if names is None:
        return None
    unknown = [n for n in names if n not in PAYLOAD_FIELDS and not _is_trait_field(n)]
    for name in unknown:
        reader.problem(
            node,
            field,
            f"'{name}' is not a field of a delivery; use traits.<name> or one of: "
            f"{', '.join(PAYLOAD_FIELDS)}",
        )
    return None if unknown else names


def _is_trait_field(name: str) -> bool:
    return name.startswith("traits.") and len(name) > len("traits.")
