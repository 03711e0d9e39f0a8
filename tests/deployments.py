"""Polku in either mode, as real child processes, seen only through its HTTP APIs.

`distributed`: `polku ingest`, `polku stager` and `polku actions` on the run's Kafka topics and
a PostgreSQL database of the test's own. `embedded`: one `polku dev` process on a SQLite file in
the test's temporary directory. Tests written against `Deployment` run unchanged on both, which
is what keeps the two modes from drifting apart.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from services.ingest.sources import create_source
from shared.db.engine import make_engine
from shared.settings import DatabaseSettings, KafkaSettings
from tests.actions_harness import SECRET, SECRET_ENV
from tests.processes import ServiceProcess, free_port, service_env

MODES = ("distributed", "embedded")


@dataclass
class Deployment:
    mode: str
    processes: list[ServiceProcess]
    write_key: str = ""
    data_dir: Path | None = None  # embedded mode: where the SQLite file is
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def api(self) -> ServiceProcess:
        """Where events are posted and contacts read (ingest, or the one embedded process)."""
        return self.processes[0]

    @property
    def deliveries(self) -> ServiceProcess:
        """Where GET /v1/deliveries answers (actions, or the one embedded process)."""
        return self.processes[-1]

    def start(self, timeout_s: float = 60) -> None:
        for process in self.processes:
            process.start()
        for process in self.processes:
            process.wait_status("/readyz", 200, timeout_s)

    def kill(self) -> None:
        for process in self.processes:
            process.kill()

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.api.url, auth=(self.write_key, ""), timeout=15)

    async def contact(self, contact: str) -> dict[str, Any] | None:
        async with httpx.AsyncClient(base_url=self.api.url, timeout=10) as http:
            answer = await http.get(f"/v1/contacts/{contact}")
        if answer.status_code == 404:
            return None
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def stage(self, contact: str, journey: str) -> str | None:
        found = await self.contact(contact)
        if found is None:
            return None
        for state in found["journeys"]:
            if state["journey"] == journey:
                return str(state["stage"]["id"]) if state["stage"] else None
        return None


def deploy(mode: str, journeys: Path, tmp_path: Path, kafka: KafkaSettings | None,
           database: DatabaseSettings | None, **extra_env: str) -> Deployment:
    """Start Polku in `mode` with `journeys` (not yet waited for: call .start())."""
    tag = uuid.uuid4().hex[:8]
    common = {
        "POLKU_JOURNEYS_DIR": str(journeys),
        "POLKU_ACTIONS_EGRESS_ALLOW": "127.0.0.0/8",
        "POLKU_ACTIONS_DISPATCH_POLL_S": "0.1",
        "POLKU_ACTIONS_RETRY_JITTER": "0",
        "POLKU_STAGER_TIMER_INTERVAL_S": "0.2",
        SECRET_ENV: SECRET,
        **extra_env,
    }
    if mode == "embedded":
        data_dir = tmp_path / f"dev-{tag}"
        env = service_env(KafkaSettings(), DatabaseSettings(), POLKU_DEV_DATA_DIR=str(data_dir),
                          POLKU_DEV_SINK_PORT=str(free_port()), **common)
        return Deployment(mode, [ServiceProcess("dev", env)], data_dir=data_dir)
    assert kafka is not None and database is not None
    env = service_env(kafka, database, POLKU_STAGER_GROUP_ID=f"modes-stager-{tag}",
                      POLKU_ACTIONS_GROUP_ID=f"modes-actions-{tag}",
                      POLKU_INGEST_KEY_CACHE_TTL_S="1", **common)
    return Deployment(mode, [ServiceProcess(name, env) for name in ("ingest", "stager", "actions")],
                      extra={"database": database})


async def issue_write_key(deployment: Deployment) -> str:
    """The key events are sent with: the embedded mode's own `dev` key, or a new source."""
    if deployment.mode == "embedded":
        assert deployment.data_dir is not None
        return (deployment.data_dir / "write-key").read_text().strip()
    engine = make_engine(deployment.extra["database"])
    try:
        _, key = await create_source(engine, f"modes-{uuid.uuid4().hex[:8]}")
    finally:
        await engine.dispose()
    return key


async def post_until_acknowledged(http: httpx.AsyncClient, batch: list[dict[str, Any]],
                                  attempts: int = 240) -> None:
    """Post a batch as an SDK does: on a 503 or a broken connection, again with the same
    messageIds, until it is acknowledged."""
    for _ in range(attempts):
        try:
            answer = await http.post("/v1/batch", json={"batch": batch})
        except httpx.TransportError:
            answer = None
        if answer is not None and answer.status_code == 200:
            return
        assert answer is None or answer.status_code == 503, answer.text
        await asyncio.sleep(0.25)
    raise AssertionError("a batch was never acknowledged")


@asynccontextmanager
async def running(deployment: Deployment) -> AsyncIterator[Deployment]:
    """`deployment` started, with the write key events are sent with; killed on the way out."""
    deployment.start()
    try:
        deployment.write_key = await issue_write_key(deployment)
        yield deployment
    finally:
        deployment.kill()
