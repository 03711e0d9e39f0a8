"""deploy/docker-compose.yml: valid by the Compose specification's JSON schema (the copy that
check-jsonschema vendors from the compose-spec project, with its Apache-2.0 licence; nothing is
downloaded), and started in the order that keeps a service off a schema it does not know:
infrastructure healthy, then the migration, then the services, only if it succeeded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
SERVICES = {"ingest": 8000, "stager": 8001, "actions": 8002}


def compose_problems(path: Path) -> str:
    """check-jsonschema's report on `path` ("" when it is valid)."""
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(path)], capture_output=True, text=True, timeout=120, check=False)
    return "" if done.returncode == 0 else done.stdout + done.stderr


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def test_the_compose_file_matches_the_compose_specification() -> None:
    assert compose_problems(COMPOSE) == ""


def test_a_compose_file_against_the_specification_fails(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("service_completed_successfully",
                                                  "service_finished"))
    problems = compose_problems(broken)
    assert "service_finished" in problems
    broken.write_text(COMPOSE.read_text().replace("restart: unless-stopped",
                                                  "restart: unless-stopped\n  replica: 2"))
    assert "replica" in compose_problems(broken)


def test_the_migration_runs_once_after_postgres_is_healthy(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_service_starts_only_after_the_migration_succeeded(
        services: dict[str, Any], service: str) -> None:
    assert services[service]["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    check = " ".join(services[service]["healthcheck"]["test"])
    assert f"127.0.0.1:{SERVICES[service]}/readyz" in check


def test_the_infrastructure_says_when_it_is_healthy(services: dict[str, Any]) -> None:
    for name in ("kafka", "postgres"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"


def test_kafka_and_postgres_keep_their_data_on_their_volumes(services: dict[str, Any]) -> None:
    # Where each image writes its data (apache/kafka defaults to a directory in /tmp of the
    # container, postgres:15 to PGDATA's default) is on a named volume, so recreating the
    # container loses nothing.
    mounts = {name: dict(v.split(":")[::-1] for v in services[name]["volumes"])
              for name in ("kafka", "postgres")}
    assert mounts["kafka"][services["kafka"]["environment"]["KAFKA_LOG_DIRS"]] == "kafka-data"
    assert mounts["postgres"]["/var/lib/postgresql/data"] == "pg-data"
    assert "PGDATA" not in services["postgres"]["environment"]
