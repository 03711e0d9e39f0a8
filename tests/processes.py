"""Runs Polku services as real child processes for tests that kill, restart or probe them."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.sources import create_source
from shared.settings import DatabaseSettings, KafkaSettings

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(
    kafka: KafkaSettings, database: DatabaseSettings, **extra: str
) -> dict[str, str]:
    """Environment that points a service at the test run's topics and database."""
    env = dict(os.environ)
    env.update(
        POLKU_KAFKA_BOOTSTRAP=kafka.bootstrap_servers,
        POLKU_KAFKA_TOUCHPOINTS_TOPIC=kafka.touchpoints_topic,
        POLKU_KAFKA_TRANSITIONS_TOPIC=kafka.transitions_topic,
        POLKU_KAFKA_DEAD_LETTER_TOPIC=kafka.dead_letter_topic,
        POLKU_KAFKA_PARTITIONS=str(kafka.partitions),
        POLKU_PG_DB=database.db,
        POLKU_LOG_LEVEL="warning",
    )
    env.update(extra)
    return env


@dataclass
class ServiceProcess:
    """One `polku <name>` process listening on its own port."""

    name: str
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    args: tuple[str, ...] = ()  # after the command's name, e.g. ("--reset",)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        env = dict(self.env)
        env[f"POLKU_{self.name.upper()}_PORT"] = str(self.port)
        logs = ROOT / ".polku" / "logs" / "tests"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"{self.name}-{self.port}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", self.name, *self.args],
            env=env, cwd=ROOT, stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT,
        )
        return self

    def wait_status(self, path: str, status: int, timeout_s: float) -> float:
        """Poll `path` until it answers `status`; return the seconds it took."""
        started = time.monotonic()
        last: object = None
        while time.monotonic() - started < timeout_s:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}: "
                                     f"{self.log_tail()}")
            try:
                last = httpx.get(self.url + path, timeout=5).status_code
                if last == status:
                    return time.monotonic() - started
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.25)
        raise AssertionError(f"{self.name}{path} never answered {status} (last: {last}); "
                             f"{self.log_tail()}")

    def terminate(self, timeout_s: float = 30) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def local_script(script: str, action: str) -> None:
    """Run one of deploy/local's scripts (e.g. stop or start the broker)."""
    subprocess.run(["bash", str(ROOT / "deploy" / "local" / script), action], check=True,
                   cwd=ROOT, timeout=180)


@asynccontextmanager
async def started_ingest(kafka: KafkaSettings, database: DatabaseSettings, engine: AsyncEngine,
                         source: str, **extra: str) -> AsyncIterator[tuple[ServiceProcess, str]]:
    """A ready `polku ingest` process and the write key of a new source; killed at the end."""
    _, key = await create_source(engine, f"{source}-{uuid.uuid4().hex[:6]}")
    process = ServiceProcess("ingest", service_env(kafka, database, **extra)).start()
    try:
        await asyncio.to_thread(process.wait_status, "/readyz", 200, 60)
        yield process, key
    finally:
        process.kill()
