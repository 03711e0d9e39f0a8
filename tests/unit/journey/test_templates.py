"""Specification of the built-in templates and of journeys that extend them."""

from __future__ import annotations

import pytest

from shared.journey import (
    Journey,
    TimerTick,
    check_yaml,
    load_template,
    replay,
    template_ids,
    validate_path,
)
from shared.journey.model.condition import Count, InactiveFor, walk
from shared.journey.parsing.journey import read_journey
from shared.journey.parsing.reader import Reader
from shared.journey.parsing.templates import template_path
from shared.journey.parsing.yaml_source import load_yaml

from .messages import at, identify, journey, page, track

STAGES = {
    "revops-8": [
        ("awareness", "Tietoisuus", "Awareness"),
        ("learning", "Oppiminen", "Learning"),
        ("prioritization", "Priorisointi", "Prioritization"),
        ("selection", "Valinta", "Selection"),
        ("commitment", "Yhteinen sitoutuminen", "Commitment"),
        ("onboarding", "Käyttöönotto", "Onboarding"),
        ("retention", "Asiakaspito", "Retention"),
        ("expansion", "Laajentaminen", "Expansion"),
    ],
    "buying-5": [
        ("need-recognition", "Tarpeen tunnistaminen", "Need recognition"),
        ("information-search", "Tiedonkeruu", "Information search"),
        ("evaluation", "Vaihtoehtojen vertailu", "Evaluation"),
        ("purchase", "Ostopäätös", "Purchase"),
        ("post-purchase", "Oston jälkeinen käyttäytyminen", "Post-purchase"),
    ],
    "brand-5": [
        ("awareness", "Tietoisuus", "Awareness"),
        ("comparison", "Vaihtoehtojen vertailu", "Comparison"),
        ("consideration", "Harkinta", "Consideration"),
        ("purchase", "Ostopäätös", "Purchase"),
        ("post-purchase", "Oston jälkeiset toimet", "Post-purchase"),
    ],
    "search-4": [
        ("search", "Tiedonhaku", "Search"),
        ("comparison", "Vertailu", "Comparison"),
        ("purchase", "Ostopäätös", "Purchase"),
        ("post-purchase", "Oston jälkeinen vaihe", "Post-purchase"),
    ],
}


def test_the_four_templates_from_the_brief_are_built_in() -> None:
    assert set(template_ids()) == set(STAGES)


@pytest.mark.parametrize("template_id", sorted(STAGES))
def test_each_template_loads_validates_and_has_bilingual_stages(template_id: str) -> None:
    assert validate_path(template_path(template_id)) == []
    template = load_template(template_id)
    assert template.id == template_id
    assert [(s.id, s.labels.fi, s.labels.en) for s in template.stages] == STAGES[template_id]
    assert template.labels.fi and template.labels.en


@pytest.mark.parametrize("template_id", sorted(STAGES))
def test_each_template_notices_contacts_who_go_quiet(template_id: str) -> None:
    rules = load_template(template_id).rules
    assert any(isinstance(node, InactiveFor) for rule in rules for node in walk(rule.when))


def test_brand_5_moves_to_consideration_after_seven_encounters() -> None:
    brand = load_template("brand-5")
    counts = [n for r in brand.rules for n in walk(r.when) if isinstance(n, Count)]
    assert [c.at_least for c in counts] == [7]
    six = [page(at(day * 5)) for day in range(6)]
    assert replay(brand, six).state.stage == "awareness"  # type: ignore[union-attr]
    seventh = replay(brand, [*six, page(at(40))])
    assert seventh.state is not None and seventh.state.stage == "consideration"


def test_revops_8_hands_a_demo_request_to_sales_and_notices_a_stalled_deal() -> None:
    revops = load_template("revops-8")
    step = replay(revops, [page(), track("Demo Requested", at(1)), TimerTick(at(40))])
    assert [t.to_stage for t in step.transitions] == ["awareness", "selection", "prioritization"]
    assert step.transitions[1].rule_id == "sales-handoff"
    assert step.transitions[2].cause == "timer:deal-stalled"


def test_revops_8_qualifies_a_lead_by_engagement_score() -> None:
    revops = load_template("revops-8")
    step = replay(
        revops,
        [page(), track("Webinar Attended", at(1)), track("Calculator Used", at(2))],
    )
    assert step.state is not None and step.state.stage == "prioritization"


def test_buying_5_and_search_4_follow_a_purchase_into_post_purchase() -> None:
    for template_id, after in (("buying-5", "Review Submitted"), ("search-4", "Shipment Tracked")):
        step = replay(
            load_template(template_id),
            [page(), track("Order Completed", at(1)), track(after, at(3))],
        )
        assert step.state is not None and step.state.stage == "post-purchase", template_id


EXTENDED = """
id: webshop
version: 1
labels: {fi: Verkkokauppa, en: Web shop}
template: buying-5
entry: {traits: {segment: consumer}}
stages:
  - id: post-purchase
    labels: {fi: Asiakassuhde, en: Customer care}
  - id: lost
    labels: {fi: Menetetty, en: Lost}
rules:
  - id: evaluation-went-cold
    when: {inactive_for: 14d}
  - id: gone
    from: [information-search]
    to: lost
    when: {inactive_for: 90d}
"""


def extended() -> Journey:
    return journey(EXTENDED)


def test_a_journey_overrides_template_stages_by_id_and_appends_new_ones() -> None:
    shop = extended()
    assert shop.template == "buying-5"
    assert shop.stage_ids == (
        "need-recognition",
        "information-search",
        "evaluation",
        "purchase",
        "post-purchase",
        "lost",
    )
    stage = shop.stage("post-purchase")
    assert stage is not None and stage.labels.en == "Customer care"


def test_a_journey_overrides_template_rules_key_by_key_and_appends_new_ones() -> None:
    shop = extended()
    assert [r.id for r in shop.rules][-2:] == ["evaluation-went-cold", "gone"]
    cold = shop.rule("evaluation-went-cold")
    assert cold is not None
    assert cold.from_stages == ("evaluation",) and cold.to == "information-search"
    assert cold.when == InactiveFor(cold.when.duration)  # type: ignore[union-attr]
    # The template's reason described 30 days; with a new `when` the description is generated.
    assert cold.reason is None
    step = replay(
        shop,
        [identify({"segment": "consumer"}), track("Quote Requested", at(1)), TimerTick(at(16))],
    )
    assert step.transitions[-1].reason == "rule 'evaluation-went-cold': no touchpoints for 14 days"


def test_problems_in_an_extending_journey_point_at_its_own_lines() -> None:
    broken = (
        EXTENDED.replace("to: lost", "to: lots") + "  - {id: gone, to: lost, when: {event: X}}\n"
    )
    _, problems = check_yaml(broken, "shop.yaml")
    assert [(p.file, p.line) for p in problems] == [("shop.yaml", 17), ("shop.yaml", 19)]
    assert "stage 'lots'" in problems[0].message
    assert "rule id 'gone' is used twice" in problems[1].message


def test_a_template_cannot_use_a_template() -> None:
    root, _ = load_yaml(EXTENDED, "t.yaml")
    reader = Reader()
    assert root is not None
    assert read_journey(reader, root, is_template=True) is None
    assert any("cannot itself use a template" in p.message for p in reader.problems)
    assert check_yaml(EXTENDED)[0] is not None
