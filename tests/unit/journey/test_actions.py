"""Specification of actions: which webhooks a transition or a merge triggers, and their bodies."""

from __future__ import annotations

import pytest

from shared.journey import (
    ContactsMerged,
    RuleFired,
    StageEntered,
    Transition,
    TransitionBetween,
    WebhookTarget,
    actions_for,
    check_yaml,
    delivery_id,
    json_schema,
    merge_delivery_id,
    merge_webhooks,
    replay,
    webhooks_for,
)

from .messages import FUNNEL, at, identify, journey, page, track

ACTIONS = """
actions:
  - on: {stage_entered: selection}
    webhooks:
      - url: http://127.0.0.1:8099/hooks/sales
        secret_env: POLKU_DEMO_WEBHOOK_SECRET
        headers: {X-Team: sales, X-Priority: 1}
        fields: [contact, to, traits.email]
  - on: {transition: {from: customer, to: at-risk}}
    webhooks:
      - {url: 'https://cs.example.com/hooks/quiet', secret_file: /run/secrets/cs}
  - on: {rule: demo}
    webhooks:
      - {url: 'http://127.0.0.1:8099/hooks/sales', secret_env: OTHER}
      - {url: 'http://127.0.0.1:8099/hooks/audit', secret_env: POLKU_DEMO_WEBHOOK_SECRET}
"""


def demo_transition() -> tuple[Transition, object]:
    definition = journey(FUNNEL + ACTIONS)
    step = replay(
        definition,
        [
            identify({"email": "a@example.com", "plan": "pro"}, message_id="m-1"),
            track("Demo Requested", at(1), message_id="m-2"),
        ],
    )
    return step.transitions[-1], step.state


def test_actions_are_parsed_into_triggers_and_webhook_targets() -> None:
    definition = journey(FUNNEL + ACTIONS)
    first, second, third = definition.actions
    assert first.on == StageEntered("selection")
    assert second.on == TransitionBetween("customer", "at-risk")
    assert third.on == RuleFired("demo")
    assert first.webhooks[0] == WebhookTarget(
        url="http://127.0.0.1:8099/hooks/sales",
        secret_env="POLKU_DEMO_WEBHOOK_SECRET",
        headers={"X-Team": "sales", "X-Priority": "1"},
        fields=("contact", "to", "traits.email"),
    )
    assert second.webhooks[0].secret_file == "/run/secrets/cs"
    assert second.webhooks[0].fields is None


def test_actions_for_returns_matching_actions_in_file_order() -> None:
    definition = journey(FUNNEL + ACTIONS)
    transition, _ = demo_transition()
    assert [a.on for a in actions_for(definition, transition)] == [
        StageEntered("selection"),
        RuleFired("demo"),
    ]
    entered = replay(definition, [page()]).transitions[0]
    assert actions_for(definition, entered) == []


def test_each_url_gets_one_delivery_per_transition_with_a_stable_id() -> None:
    definition = journey(FUNNEL + ACTIONS)
    transition, _ = demo_transition()
    targets = webhooks_for(definition, transition)
    assert [t.url for t in targets] == [
        "http://127.0.0.1:8099/hooks/sales",
        "http://127.0.0.1:8099/hooks/audit",
    ]
    assert targets[0].secret_env == "POLKU_DEMO_WEBHOOK_SECRET"
    again, _ = demo_transition()
    assert delivery_id(transition, targets[0]) == delivery_id(again, targets[0])
    assert delivery_id(transition, targets[0]) != delivery_id(transition, targets[1])
    assert delivery_id(transition, targets[0]).startswith("msg_")


HOOK = "url: 'http://a.example', secret_env: S"


@pytest.mark.parametrize(
    ("on", "webhooks", "fragment"),
    [
        ("{stage_entered: nowhere}", f"[{{{HOOK}}}]", "stage 'nowhere' in an action"),
        ("{rule: nope}", f"[{{{HOOK}}}]", "rule 'nope' in an action"),
        (
            "{rule: demo, stage_entered: customer}",
            f"[{{{HOOK}}}]",
            "exactly one of: stage_entered, transition, rule, contact_merged",
        ),
        ("{contact_merged: false}", f"[{{{HOOK}}}]", "contact_merged takes only 'true'"),
        ("{contact_merged: yes please}", f"[{{{HOOK}}}]", "contact_merged takes only 'true'"),
        (
            "{contact_merged: true, rule: demo}",
            f"[{{{HOOK}}}]",
            "exactly one of: stage_entered, transition, rule, contact_merged",
        ),
        ("{transition: {from: customer}}", f"[{{{HOOK}}}]", "'to' is missing from a transition"),
        ("{stage_entered: customer}", "[{url: 'ftp://a.example', secret_env: S}]", "web address"),
        ("{stage_entered: customer}", "[{url: 'http://a.example'}]", "exactly one of secret_env"),
        (
            "{stage_entered: customer}",
            "[{url: 'http://a.example', secret_env: 'my secret'}]",
            "not an environment variable name",
        ),
        (
            "{stage_entered: customer}",
            f"[{{{HOOK}, headers: {{Webhook-Signature: x}}}}]",
            "set by Polku itself",
        ),
        (
            "{stage_entered: customer}",
            f"[{{{HOOK}, fields: [email]}}]",
            "'email' is not a field of a delivery",
        ),
        ("{stage_entered: customer}", "[]", "should not be empty"),
    ],
)
def test_invalid_actions_are_reported(on: str, webhooks: str, fragment: str) -> None:
    action = f"actions:\n  - on: {on}\n    webhooks: {webhooks}\n"
    _, problems = check_yaml(FUNNEL + action, "a.yaml")
    assert any(fragment in p.message for p in problems), problems
    assert all(p.line > 30 for p in problems)


def webhook_url(url: str, environ: dict[str, str]) -> tuple[str | None, list[str]]:
    """The url a webhook ends up with when the journey is read in `environ`, and the problems."""
    action = (f"actions:\n  - on: {{stage_entered: customer}}\n"
              f"    webhooks: [{{url: '{url}', secret_env: S}}]\n")
    found, problems = check_yaml(FUNNEL + action, "a.yaml", environ)
    target = found.actions[0].webhooks[0].url if found is not None else None
    return target, [p.message for p in problems]


def test_a_webhook_url_takes_environment_variables_with_a_default() -> None:
    url = "${POLKU_DEV_SINK_URL:-http://127.0.0.1:8099}/hooks/sales"
    assert webhook_url(url, {}) == ("http://127.0.0.1:8099/hooks/sales", [])
    assert webhook_url(url, {"POLKU_DEV_SINK_URL": ""}) == ("http://127.0.0.1:8099/hooks/sales", [])
    assert webhook_url(url, {"POLKU_DEV_SINK_URL": "http://127.0.0.1:43123"}) == (
        "http://127.0.0.1:43123/hooks/sales", [])
    assert webhook_url("https://crm.example.com/h?key=${CRM_KEY}", {"CRM_KEY": "k1"}) == (
        "https://crm.example.com/h?key=k1", [])


def test_a_webhook_url_naming_an_unset_variable_is_refused_with_its_name() -> None:
    url, problems = webhook_url("${CRM_URL}/hooks/polku", {"OTHER": "x"})
    assert url is None
    assert len(problems) == 1 and "environment variable CRM_URL" in problems[0]


@pytest.mark.parametrize("url", ["${CRM URL}/hooks", "http://a.example/${CRM_URL", "$${}/x"])
def test_a_malformed_variable_reference_in_a_webhook_url_is_refused(url: str) -> None:
    found, problems = webhook_url(url, {"CRM_URL": "http://a.example"})
    assert found is None
    assert any("write ${NAME} or ${NAME:-default}" in p for p in problems), problems


def test_a_problem_with_a_filled_in_url_never_shows_the_variable_value() -> None:
    found, problems = webhook_url("${CRM_URL}/hooks", {"CRM_URL": "ftp://host/?token=s3cr3t"})
    assert found is None
    assert len(problems) == 1 and "once its environment variables are filled in" in problems[0]
    assert "s3cr3t" not in problems[0]


MERGE_ACTIONS = """
actions:
  - on: {contact_merged: true}
    webhooks:
      - {url: 'https://crm.example.com/hooks/merged', secret_env: CRM_SECRET, fields: [contact]}
      - {url: 'https://audit.example.com/ids', secret_file: /run/secrets/audit}
  - on: {stage_entered: selection}
    webhooks:
      - {url: 'https://crm.example.com/hooks/sales', secret_env: CRM_SECRET}
  - on: {contact_merged: true}
    webhooks:
      - {url: 'https://crm.example.com/hooks/merged', secret_env: LATER_SECRET}
"""


def test_a_contact_merged_action_is_read_and_never_matches_a_transition() -> None:
    definition = journey(FUNNEL + MERGE_ACTIONS)
    assert [a.on for a in definition.actions] == [
        ContactsMerged(), StageEntered("selection"), ContactsMerged()
    ]
    transition, _ = demo_transition()
    assert [t.url for t in webhooks_for(definition, transition)] == [
        "https://crm.example.com/hooks/sales"
    ]


def test_merges_go_once_to_each_url_over_all_journeys_the_first_journey_by_id_naming_it() -> None:
    merging = journey(FUNNEL + MERGE_ACTIONS)
    other = journey(FUNNEL.replace("id: funnel", "id: another", 1) + """
actions:
  - on: {contact_merged: true}
    webhooks:
      - {url: 'https://audit.example.com/ids', secret_env: ANOTHER_SECRET}
      - {url: 'https://ops.example.com/merges', secret_env: OPS_SECRET}
""")
    silent = journey(FUNNEL.replace("id: funnel", "id: aaa-silent", 1))
    found = merge_webhooks([merging, silent, other])
    assert [(journey_id, t.url, t.secret_env) for journey_id, t in found] == [
        ("another", "https://audit.example.com/ids", "ANOTHER_SECRET"),
        ("another", "https://ops.example.com/merges", "OPS_SECRET"),
        ("funnel", "https://crm.example.com/hooks/merged", "CRM_SECRET"),
    ]
    assert merge_webhooks([other, silent, merging]) == found
    assert merge_webhooks([silent, journey(FUNNEL + ACTIONS)]) == []


def test_a_merge_has_one_stable_delivery_id_per_url() -> None:
    [(_, first), (_, second)] = merge_webhooks([journey(FUNNEL + MERGE_ACTIONS)])
    merge_id = "6f0f2a7e-39a4-5b8e-9a53-0c1d2e3f4a5b"
    assert merge_delivery_id(merge_id, first) == merge_delivery_id(merge_id, first)
    assert merge_delivery_id(merge_id, first) != merge_delivery_id(merge_id, second)
    other_merge = "7a1b2c3d-4e5f-5a6b-8c7d-9e0f1a2b3c4d"
    assert merge_delivery_id(merge_id, first) != merge_delivery_id(other_merge, first)
    assert merge_delivery_id(merge_id, first).startswith("msg_")


def test_the_json_schema_takes_contact_merged_true_only() -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    import yaml

    validator = jsonschema_rs.validator_for(json_schema())
    document = yaml.safe_load(FUNNEL + MERGE_ACTIONS)
    document["actions"] = [{"on": a[True], "webhooks": a["webhooks"]}
                           for a in document["actions"]]
    assert validator.is_valid(document)
    document["actions"][0]["on"] = {"contact_merged": False}
    assert not validator.is_valid(document)
