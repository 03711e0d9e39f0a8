"""The container deployment binds 0.0.0.0, so it must hand each operator API its token, from
the operator's environment (never from the image), and refuse to start without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
TOKENS = {"ingest": {"POLKU_INGEST_READ_TOKEN", "POLKU_INGEST_ADMIN_TOKEN"},
          "actions": {"POLKU_ACTIONS_ADMIN_TOKEN"}}


def _services() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"])


def test_compose_requires_each_api_token_and_gives_it_to_its_own_service_only() -> None:
    services = _services()
    every = set().union(*TOKENS.values())
    for service, variables in TOKENS.items():
        for variable in variables:
            # `${VAR:?message}`: compose stops before starting anything when VAR is unset or
            # empty.
            assert services[service]["environment"][variable].startswith(f"${{{variable}:?")
    for service in ("ingest", "stager", "actions", "migrate"):
        given = {v for v in every if v in services[service]["environment"]}
        assert given == TOKENS.get(service, set()), service


def test_the_image_listens_publicly_and_bakes_no_token() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    env_lines = [ln for ln in dockerfile.splitlines() if ln.startswith(("ENV", "ARG"))]
    assert any("POLKU_HOST=0.0.0.0" in ln for ln in env_lines)
    assert not any("TOKEN" in ln for ln in env_lines)
