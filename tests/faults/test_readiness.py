"""Every service says when it cannot reach Kafka or PostgreSQL, and recovers by itself."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from shared.settings import DatabaseSettings, KafkaSettings
from tests.processes import ServiceProcess, local_script, service_env

SERVICES = ("ingest", "stager", "actions")


@pytest.fixture
def services(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> Iterator[list[ServiceProcess]]:
    env = service_env(kafka_settings, database_settings, POLKU_LOG_LEVEL="info")
    procs = [ServiceProcess(name, env).start() for name in SERVICES]
    try:
        for proc in procs:
            proc.wait_status("/readyz", 200, timeout_s=60)
        yield procs
    finally:
        for proc in procs:
            proc.kill()


def test_services_are_healthy_ready_and_export_metrics(services: list[ServiceProcess]) -> None:
    import httpx

    for proc in services:
        assert httpx.get(proc.url + "/healthz").json() == {"status": "ok"}
        ready = httpx.get(proc.url + "/readyz").json()
        # Ingest also says whether its producer can produce and its topic is as durable as
        # the settings ask.
        extra = {"producer": True, "topics": True} if proc.name == "ingest" else {}
        assert ready["checks"] == {"kafka": True, "database": True, **extra}
        metrics = httpx.get(proc.url + "/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert "process_cpu_seconds_total" in metrics.text


def test_readyz_fails_while_the_broker_is_down_and_recovers(
    services: list[ServiceProcess],
) -> None:
    local_script("kafka.sh", "stop")
    try:
        for proc in services:
            took = proc.wait_status("/readyz", 503, timeout_s=15)
            assert took < 15
            # Alive all the same: the process itself is fine, only a dependency is missing.
            proc.wait_status("/healthz", 200, timeout_s=2)
    finally:
        local_script("kafka.sh", "start")
    for proc in services:
        proc.wait_status("/readyz", 200, timeout_s=60)


def test_sigterm_shuts_every_service_down_cleanly(services: list[ServiceProcess]) -> None:
    for proc in services:
        # uvicorn re-raises the signal once the lifespan has closed everything, so the exit
        # status is "terminated by SIGTERM" and the log shows the shutdown ran to completion.
        assert proc.terminate(timeout_s=30) in (0, -signal.SIGTERM), proc.log_tail()
        assert "Application shutdown complete" in proc.log_tail(), proc.log_tail()
