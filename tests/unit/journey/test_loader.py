"""Specification of loading journey files and of the problems reported to marketers."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from shared.journey import (
    JourneyError,
    Problem,
    check_yaml,
    journey_from_yaml,
    json_schema,
    load_journeys,
    validate_path,
)

from .messages import FUNNEL

REPO = Path(__file__).resolve().parents[3]


def problems_in(text: str) -> list[Problem]:
    journey, problems = check_yaml(textwrap.dedent(text), "j.yaml")
    assert journey is None
    return problems


def only(problems: list[Problem], fragment: str) -> Problem:
    found = [p for p in problems if fragment in p.message]
    assert len(found) == 1, problems
    return found[0]


HEAD = """\
id: leads
version: 1
labels: {fi: Liidit, en: Leads}
stages:
  - {id: awareness, labels: {fi: T, en: A}}
  - {id: learning, labels: {fi: O, en: L}}
  - {id: qualified, labels: {fi: P, en: Q}}
rules:
"""


def test_a_misspelt_stage_is_reported_with_its_line_and_the_stages_to_choose_from() -> None:
    problem = only(
        problems_in(
            HEAD
            + """\
  - id: demo-request
    from: [awareness, learning]
    to: qualifed
    when: {event: Demo Requested}
"""
        ),
        "qualifed",
    )
    assert (problem.file, problem.line, problem.field) == ("j.yaml", 11, "rules[demo-request].to")
    assert problem.message == (
        "stage 'qualifed' in rule 'demo-request' (line 11) is not one of this journey's stages: "
        "awareness, learning, qualified"
    )
    assert str(problem).startswith("j.yaml:11: rules[demo-request].to: stage 'qualifed'")


def test_every_problem_is_reported_not_just_the_first() -> None:
    problems = problems_in(
        HEAD
        + """\
  - id: a
    to: nowhere
    when: {inactive_for: 30 days}
  - id: a
    from: [limbo]
    to: learning
    when: {event: X, properties: {amount: {greater: 5}}}
"""
    )
    assert [(p.line, p.field) for p in problems] == [
        (10, "rules[a].to"),
        (11, "rules[a].when.inactive_for"),
        (12, "rules[1].id"),
        (13, "rules[a].from"),
        (15, "rules[a].when.properties.amount.greater"),
    ]
    messages = " | ".join(p.message for p in problems)
    assert "'30 days' is not a duration" in messages
    assert "rule id 'a' is used twice (first on line 9)" in messages
    assert "'greater' is not an operator for property 'amount'" in messages
    assert "use one of: equals, in, exists, gt, gte, lt, lte, contains" in messages


@pytest.mark.parametrize(
    ("yaml_text", "line", "fragment"),
    [
        (HEAD + "  - {id: r, to: learning, wen: {event: X}}\n", 9, "did you mean 'when'?"),
        (HEAD + "  - {id: r, to: learning}\n", 9, "'when' is missing from rule 'r'"),
        (HEAD + "  - {id: Demo Request, to: learning, when: {event: X}}\n", 9, "not a valid id"),
        (HEAD + "  - {id: r, to: learning, when: {type: pageview}}\n", 9, "not a touchpoint type"),
        (HEAD + "  - {id: r, to: learning, when: {}}\n", 9, "is empty"),
        (HEAD + "  - {id: r, to: learning, when: {count: {at_least: 0}}}\n", 9, "at least 1"),
        (HEAD + "  - {id: r, to: learning, when: {any: []}}\n", 9, "should not be empty"),
        (
            HEAD
            + "  - {id: r, to: learning, when: {count: {at_least: 2, matching: {traits: {}}}}}\n",
            9,
            "inside a count",
        ),
        (
            HEAD
            + "  - {id: r, to: learning, when: {score: {weights: [{points: x}], at_least: 5}}}\n",
            9,
            "should be a number",
        ),
        (HEAD + "  - {id: r, from: [learning], to: learning, when: {event: X}}\n", 9, "never fire"),
        (HEAD + "  - {id: r, to: learning, when: {traits: {plan: ~}}}\n", 9, "exists: false"),
        (HEAD.replace("version: 1", "version: one"), 2, "whole number"),
        (HEAD.replace("{fi: Liidit, en: Leads}", "{fi: Liidit}"), 3, "'en' is missing"),
        (
            HEAD.replace("id: leads", "id: leads\ntemplate: buying-6"),
            2,
            "no built-in template 'buying-6'",
        ),
        (
            HEAD.replace(
                "  - {id: qualified",
                "  - {id: learning, labels: {fi: O, en: L}}\n  - {id: qualified",
            )
            + "  - {id: r, to: learning, when: {event: X}}\n",
            7,
            "stage id 'learning' is used twice",
        ),
        (
            HEAD + "  - {id: r, to: learning, when: {event: X}}\nentry: {inactive_for: 3d}\n",
            10,
            "entry condition cannot",
        ),
        (
            HEAD + "  - {id: r, to: learning, when: {event: X}}\nretired_stages: {learning: x}\n",
            10,
            "still a stage",
        ),
        (
            HEAD + "  - {id: r, to: learning, when: {event: X}}\ncolour: blue\n",
            10,
            "not a setting of a journey",
        ),
        ("id: x\nversion: 1\nlabels: {fi: a, en: b}\n", 1, "needs 'stages'"),
        ("id: x\n\tversion: 1\n", 2, "not valid YAML"),
        ("id: x\nid: y\n", 2, "written twice"),
        ("", 1, "empty"),
    ],
)
def test_problems_are_located_and_explained(yaml_text: str, line: int, fragment: str) -> None:
    problem = only(problems_in(yaml_text), fragment)
    assert problem.line == line, problem


def test_journey_error_lists_every_problem_one_per_line() -> None:
    with pytest.raises(JourneyError) as error:
        journey_from_yaml(HEAD + "  - {id: r, to: x, when: {event: X}}\n  - {id: s, to: y}\n")
    assert len(error.value.problems) == 3
    assert len(str(error.value).splitlines()) == 3


def test_yaml_words_like_on_yes_and_no_stay_words() -> None:
    journey = journey_from_yaml(
        FUNNEL.replace("when: {event: Order Completed}", "when: {properties: {answer: no}}")
        + "actions:\n  - on: {stage_entered: customer}\n    webhooks:\n"
        "      - {url: 'http://127.0.0.1:8099/hooks/x', secret_env: S}\n"
    )
    bought = journey.rule("bought")
    assert bought is not None and "'no'" in repr(bought.when)
    assert len(journey.actions) == 1


def test_load_journeys_reads_a_directory_and_reports_problems_of_all_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(FUNNEL)
    (tmp_path / "b.yml").write_text(FUNNEL.replace("id: funnel", "id: other"))
    (tmp_path / "notes.txt").write_text("not a journey")
    assert [j.id for j in load_journeys(tmp_path)] == ["funnel", "other"]

    (tmp_path / "c.yaml").write_text(FUNNEL)
    (tmp_path / "d.yaml").write_text("id: broken\n")
    with pytest.raises(JourneyError) as error:
        load_journeys(tmp_path)
    text = str(error.value)
    assert "c.yaml:1: id: journey id 'funnel' is already used by" in text
    assert "d.yaml" in text


def test_validate_path_accepts_a_file_or_a_directory_and_reports_missing_paths(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.yaml").write_text(FUNNEL)
    assert validate_path(tmp_path / "a.yaml") == []
    assert validate_path(tmp_path) == []
    missing = validate_path(tmp_path / "nope.yaml")
    assert len(missing) == 1 and "no such file" in missing[0].message


def test_the_shipped_example_journeys_validate() -> None:
    assert validate_path(REPO / "journeys") == []
    ids = {j.id for j in load_journeys(REPO / "journeys")}
    assert {"b2b-cto", "webshop-buying", "saas-onboarding"} <= ids


def test_the_shipped_example_journeys_send_to_the_dev_sink_url_or_port_8099() -> None:
    # Valid without POLKU_DEV_SINK_URL (the distributed mode); `polku dev` sets it to its sink.
    urls = {t.url for j in load_journeys(REPO / "journeys", {}) for a in j.actions
            for t in a.webhooks}
    assert urls and all(u.startswith("http://127.0.0.1:8099/hooks/") for u in urls)
    moved = {t.url for j in load_journeys(REPO / "journeys", {"POLKU_DEV_SINK_URL": "http://[::1]:9"})
             for a in j.actions for t in a.webhooks}
    assert moved and all(u.startswith("http://[::1]:9/hooks/") for u in moved)


def test_the_json_schema_accepts_every_shipped_journey_and_template() -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    import yaml

    validator = jsonschema_rs.validator_for(json_schema())
    files = [
        *(REPO / "journeys").glob("*.yaml"),
        *(REPO / "shared/journey/parsing/templates").glob("*.yaml"),
    ]
    assert len(files) >= 7
    for file in files:
        document = _typed(yaml.safe_load(file.read_text()))
        errors = [e.message for e in validator.iter_errors(document)]
        assert errors == [], (file, errors)
    assert not validator.is_valid({"id": "x", "version": 1, "labels": {"fi": "a"}})


def _typed(document: object) -> object:
    # safe_load reads `on:` as True; the journey loader keeps keys verbatim.
    if isinstance(document, dict):
        return {("on" if k is True else k): _typed(v) for k, v in document.items()}
    if isinstance(document, list):
        return [_typed(v) for v in document]
    return document
