"""Specification of simulation and of the `polku journeys` command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.journeys_cli import app
from shared.journey import InvalidTouchpoint, load_journey
from shared.simulation import simulate

from .messages import FUNNEL, at, funnel, message

REPO = Path(__file__).resolve().parents[3]


def test_simulate_groups_paths_by_contact_in_arrival_order_and_ticks_timers_until() -> None:
    messages = [
        message("page", contact="alice", when=at(0)),
        message("page", contact="bob", when=at(0)),
        message("track", contact="alice", event="Order Completed", when=at(1)),
    ]
    paths = simulate(funnel(), messages)
    assert list(paths) == ["alice", "bob"]
    assert [t.to_stage for t in paths["alice"]] == ["awareness", "customer"]
    with_timers = simulate(funnel(), messages, until=at(60))
    assert [t.to_stage for t in with_timers["alice"]] == ["awareness", "customer", "at-risk"]
    assert with_timers["alice"][-1].at == at(31)


def test_simulate_refuses_a_malformed_message() -> None:
    with pytest.raises(InvalidTouchpoint):
        simulate(funnel(), [{"v": 1}])


def test_the_demo_events_walk_the_example_journeys() -> None:
    events = [
        json.loads(line)
        for line in (REPO / "journeys/demo-events.jsonl").read_text().splitlines()
        if line.strip()
    ]
    onboarding = simulate(load_journey(REPO / "journeys/saas-onboarding.yaml"), events)
    assert [t.to_stage for t in onboarding["u-anna"]] == ["signed-up", "activated", "engaged"]
    assert onboarding["u-carla"] == []
    b2b = simulate(load_journey(REPO / "journeys/b2b-cto.yaml"), events)
    assert b2b["u-carla"][-1].to_stage == "selection"


runner = CliRunner()


def test_cli_validate_prints_problems_and_fails(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(FUNNEL.replace("to: customer", "to: custmer", 1))
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'bad.yaml'}:13: rules[bought].to: stage 'custmer'" in result.output


def test_cli_validate_uses_the_journeys_directory_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(FUNNEL)
    result = runner.invoke(app, ["validate"], env={"POLKU_JOURNEYS_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output


def test_cli_schema_prints_json_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output)["title"] == "Polku journey"


def test_cli_simulate_prints_each_contacts_path(tmp_path: Path) -> None:
    journey_file = tmp_path / "funnel.yaml"
    journey_file.write_text(FUNNEL)
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(
            [
                json.dumps(message("track", event="Order Completed", when=at(0))),
                "{not json",
                json.dumps({"v": 1, "type": "track"}),
            ]
        )
    )
    result = runner.invoke(
        app,
        [
            "simulate",
            "--journey",
            str(journey_file),
            "--events",
            str(events),
            "--until",
            "2027-01-31T00:00:00Z",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "alice:" in result.output
    assert "(outside) -> customer" in result.output
    assert "customer -> at-risk  [timer:went-quiet]" in result.output
    assert "events.jsonl:2: not JSON" in result.output
    assert "events.jsonl:3: userId" in result.output
    as_json = runner.invoke(
        app, ["simulate", "--journey", str(journey_file), "--events", str(events), "--json"]
    )
    assert json.loads(as_json.stdout.splitlines()[0])["to"] == "customer"


def simulate_cli(journey: Path, events: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["simulate", "--journey", str(journey), "--events", str(events)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.mark.parametrize("which", ["--journey", "--events"])
@pytest.mark.parametrize("given", ["a directory", "a missing file", "not UTF-8"])
def test_cli_simulate_names_an_unusable_path_instead_of_a_traceback(
    tmp_path: Path, which: str, given: str
) -> None:
    paths = {"--journey": tmp_path / "funnel.yaml", "--events": tmp_path / "events.jsonl"}
    paths["--journey"].write_text(FUNNEL)
    paths["--events"].write_text(json.dumps(message("track", event="Order Completed")))
    bad = tmp_path / "bad"
    if given == "a directory":
        bad.mkdir()
    elif given == "not UTF-8":
        bad.write_bytes(b"\xff\xfe\x00binary")
    paths[which] = bad

    exit_code, output = simulate_cli(paths["--journey"], paths["--events"])

    assert exit_code == 2, output
    assert which in output and "bad" in output
    assert "Traceback" not in output


def test_cli_simulate_with_no_valid_touchpoint_fails_and_says_so(tmp_path: Path) -> None:
    journey_file = tmp_path / "funnel.yaml"
    journey_file.write_text(FUNNEL)
    events = tmp_path / "events.jsonl"
    events.write_text("{not json\n" + json.dumps({"v": 1, "type": "track"}) + "\n")

    exit_code, output = simulate_cli(journey_file, events)

    assert exit_code == 1, output
    assert "events.jsonl:1: not JSON" in output
    assert "no valid touchpoint to simulate" in output
