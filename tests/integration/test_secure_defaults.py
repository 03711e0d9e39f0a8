"""Secure by default: the operator APIs refuse to be served in public without their tokens, and
each token opens only its own API, in the distributed services and in `polku dev` alike.

Real `polku` processes: the refusal must come from the command an operator runs, before it
connects to anything, as one line naming the variable to set (no traceback).
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.settings import DatabaseSettings, KafkaSettings
from tests.processes import ROOT, ServiceProcess, free_port, service_env
from tests.stager_harness import JOURNEYS

READ = "POLKU_INGEST_READ_TOKEN"
ADMIN = "POLKU_ACTIONS_ADMIN_TOKEN"
PRIVACY = "POLKU_INGEST_ADMIN_TOKEN"
READ_TOKEN = "read-" + uuid.uuid4().hex
ADMIN_TOKEN = "admin-" + uuid.uuid4().hex
PRIVACY_TOKEN = "privacy-" + uuid.uuid4().hex
# Nothing listens here: a process that tried to reach Kafka or PostgreSQL would hang or fail
# with a traceback instead of answering at once.
UNREACHABLE = {"POLKU_KAFKA_BOOTSTRAP": "127.0.0.1:9", "POLKU_PG_PORT": "9"}


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = service_env(KafkaSettings(), DatabaseSettings(), POLKU_JOURNEYS_DIR=str(JOURNEYS),
                      POLKU_DEV_DATA_DIR=str(tmp_path / "dev"),
                      POLKU_DEV_SINK_PORT=str(free_port()), **UNREACHABLE)
    for name in (READ, ADMIN, PRIVACY, "POLKU_HOST", "POLKU_DEV_HOST"):
        env.pop(name, None)
    env.update(extra)
    return env


def _run_until_exit(command: str, env: dict[str, str], timeout_s: float = 30
                    ) -> tuple[int | None, str]:
    """The exit code (None: still running after `timeout_s`, then killed) and all output."""
    env = {**env, f"POLKU_{command.upper()}_PORT": str(free_port())}
    process = subprocess.Popen([sys.executable, "-m", "services.cli", command], env=env,
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        output, _ = process.communicate(timeout=timeout_s)
        return process.returncode, output.decode(errors="replace")
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        return None, output.decode(errors="replace")


@pytest.mark.parametrize(("command", "env", "named"), [
    ("ingest", {"POLKU_HOST": "0.0.0.0"}, [READ, PRIVACY]),
    ("ingest", {"POLKU_HOST": "0.0.0.0", READ: READ_TOKEN}, [PRIVACY]),
    ("actions", {"POLKU_HOST": "0.0.0.0"}, [ADMIN]),
    ("actions", {"POLKU_HOST": "0.0.0.0", ADMIN: ""}, [ADMIN]),
    ("dev", {"POLKU_DEV_HOST": "0.0.0.0"}, [READ, ADMIN, PRIVACY]),
    ("dev", {"POLKU_DEV_HOST": "::", ADMIN: ADMIN_TOKEN, PRIVACY: PRIVACY_TOKEN}, [READ]),
    # On loopback too, one process never protects one API and leaves the other open.
    ("dev", {READ: READ_TOKEN}, [ADMIN, PRIVACY]),
    ("ingest", {READ: READ_TOKEN}, [PRIVACY]),
    ("dev", {READ: READ_TOKEN, ADMIN: READ_TOKEN, PRIVACY: PRIVACY_TOKEN}, [READ, ADMIN]),
], ids=["ingest", "ingest-read-only", "actions", "actions-empty-token", "dev", "dev-ipv6-half",
        "dev-read-only", "ingest-loopback-read-only", "dev-one-value"])
def test_a_public_bind_without_its_tokens_refuses_to_start_naming_them(
    tmp_path: Path, command: str, env: dict[str, str], named: list[str],
) -> None:
    started = time.monotonic()
    code, output = _run_until_exit(command, _env(tmp_path, **env))
    assert code == 2, f"polku {command} did not refuse to start (exit {code}): {output}"
    assert time.monotonic() - started < 20  # it did not wait for Kafka or PostgreSQL
    assert output.startswith(f"polku {command}: not starting: "), output
    for variable in named:
        assert variable in output
    assert "Traceback" not in output
    assert not (tmp_path / "dev").exists()  # `polku dev` touched no data directory


@pytest.fixture
def started() -> Iterator[list[ServiceProcess]]:
    processes: list[ServiceProcess] = []
    yield processes
    for process in processes:
        process.kill()


def _start(started: list[ServiceProcess], name: str, env: dict[str, str]) -> ServiceProcess:
    process = ServiceProcess(name, env).start()
    started.append(process)
    process.wait_status("/healthz", 200, timeout_s=60)
    return process


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_ingest_and_actions_start_on_a_public_bind_with_their_tokens_and_demand_them(
    topic_names: KafkaSettings, database_settings: DatabaseSettings,
    started: list[ServiceProcess],
) -> None:
    env = service_env(topic_names, database_settings, POLKU_JOURNEYS_DIR=str(JOURNEYS),
                      POLKU_HOST="0.0.0.0", POLKU_INGEST_READ_TOKEN=READ_TOKEN,
                      POLKU_INGEST_ADMIN_TOKEN=PRIVACY_TOKEN, POLKU_ACTIONS_ADMIN_TOKEN=ADMIN_TOKEN)
    ingest = _start(started, "ingest", env)
    actions = _start(started, "actions", env)
    assert httpx.get(f"{ingest.url}/v1/journeys").status_code == 401
    assert httpx.get(f"{ingest.url}/v1/journeys", headers=_bearer(READ_TOKEN)).status_code == 200
    receipt = f"{ingest.url}/v1/erasures/er_unknown"
    for token in (None, READ_TOKEN, ADMIN_TOKEN):
        headers = _bearer(token) if token else {}
        assert httpx.get(receipt, headers=headers).status_code == 401
        assert httpx.delete(f"{ingest.url}/v1/contacts/c-1", headers=headers).status_code == 401
    assert httpx.get(receipt, headers=_bearer(PRIVACY_TOKEN)).status_code == 404
    assert httpx.get(f"{actions.url}/v1/endpoints").status_code == 401
    assert httpx.get(f"{actions.url}/v1/endpoints",
                     headers=_bearer(READ_TOKEN)).status_code == 401
    assert httpx.get(f"{actions.url}/v1/endpoints",
                     headers=_bearer(ADMIN_TOKEN)).status_code == 200


# Every route of the delivery API, the mutating ones first: none opens to the read token.
DELIVERY_ROUTES = [
    ("POST", "/v1/deliveries/redeliver?status=failed&since=2026-01-01T00:00:00Z", 202),
    ("POST", "/v1/deliveries/d-unknown/retry", 404),
    ("POST", "/v1/endpoints/ep-unknown/enable", 404),
    ("GET", "/v1/deliveries", 200),
    ("GET", "/v1/deliveries/d-unknown", 404),
    ("GET", "/v1/endpoints", 200),
]


def test_in_dev_the_read_token_opens_the_read_api_only_and_the_admin_token_the_deliveries(
    tmp_path: Path, started: list[ServiceProcess],
) -> None:
    env = _env(tmp_path, POLKU_DEV_HOST="0.0.0.0", POLKU_INGEST_READ_TOKEN=READ_TOKEN,
               POLKU_ACTIONS_ADMIN_TOKEN=ADMIN_TOKEN, POLKU_INGEST_ADMIN_TOKEN=PRIVACY_TOKEN)
    dev = _start(started, "dev", env)
    with httpx.Client(base_url=dev.url, timeout=10) as http:
        for method, path, answer in DELIVERY_ROUTES:
            assert http.request(method, path).status_code == 401, path
            read = http.request(method, path, headers=_bearer(READ_TOKEN))
            assert read.status_code == 401 and ADMIN in read.text, (path, read.text)
            admin = http.request(method, path, headers=_bearer(ADMIN_TOKEN))
            assert admin.status_code == answer, (path, admin.text)
        assert http.get("/v1/journeys", headers=_bearer(READ_TOKEN)).status_code == 200
        assert http.get("/v1/journeys", headers=_bearer(ADMIN_TOKEN)).status_code == 401
        assert http.get("/v1/journeys").status_code == 401
        for token in (READ_TOKEN, ADMIN_TOKEN):
            refused = http.delete("/v1/contacts/c-1", headers=_bearer(token))
            assert refused.status_code == 401 and PRIVACY in refused.text, refused.text
        assert http.get("/v1/erasures/er_unknown",
                        headers=_bearer(PRIVACY_TOKEN)).status_code == 404
        assert http.get("/healthz").status_code == 200  # ops endpoints stay open
