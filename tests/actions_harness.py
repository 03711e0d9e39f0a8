"""Shared set-up for the actions tests: a real HTTP receiver, journeys aimed at it, transitions
produced onto the test topic, and the actions service running in this process.

(No tests here; the module is shared by tests/integration, tests/e2e and tests/faults.)
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.actions.app import create_app
from services.actions.settings import ActionsSettings
from shared.clock import Clock
from shared.db.tables import webhook_deliveries, webhook_endpoints
from shared.settings import DatabaseSettings, KafkaSettings

SECRET = "whsec_" + base64.b64encode(b"polku-test-secret-0123456789abcd").decode()
SECRET_ENV = "POLKU_TEST_WEBHOOK_SECRET"


@dataclass(frozen=True)
class Reply:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay_s: float = 0.0


Behaviour = Callable[[int], Reply]  # given how many requests the path had before this one


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def verified(self, secret: str = SECRET) -> Any:
        """The body, after checking the signature as a receiver would (standardwebhooks)."""
        return Webhook(secret).verify(self.body, self.headers)


def _no_content(count: int) -> Reply:
    return Reply()


class Receiver:
    """A real HTTP server on 127.0.0.1 in its own thread, recording every request."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.behaviours: dict[str, Behaviour] = {}
        self._lock = threading.Lock()
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST", "GET"])])
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                                     access_log=False))
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._socket]}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str, behaviour: Behaviour) -> None:
        self.behaviours[path] = behaviour

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        path = request.url.path
        with self._lock:
            count = sum(1 for r in self.received if r.path == path)
            self.received.append(Received(path, dict(request.headers), body, time.time()))
        reply = self.behaviours.get(path, _no_content)(count)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        return Response(reply.body, status_code=reply.status, headers=reply.headers)

    def requests(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if path is None or r.path == path]

    def __enter__(self) -> Receiver:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)


def write_journey(directory: Path, receiver: Receiver, *, secret_file: Path | None = None,
                  extra_actions: str = "") -> Path:
    """A journey whose actions post to `receiver`: two endpoints when a contact enters
    selection, one on a learning → prioritization move."""
    directory.mkdir(parents=True, exist_ok=True)
    crm_secret = f"secret_file: {secret_file}" if secret_file else f"secret_env: {SECRET_ENV}"
    (directory / "deals.yaml").write_text(f"""
id: deals
version: 2
labels: {{fi: Kaupat, en: Deals}}
stages:
  - {{id: learning, labels: {{fi: Oppiminen, en: Learning}}}}
  - {{id: prioritization, labels: {{fi: Priorisointi, en: Prioritization}}}}
  - {{id: selection, labels: {{fi: Valinta, en: Selection}}}}
rules:
  - {{id: demo-request, to: selection, when: {{event: Demo Requested}}}}
  - {{id: engaged, from: [learning], to: prioritization, when: {{event: Webinar Attended}}}}
actions:
  - on: {{stage_entered: selection}}
    webhooks:
      - url: {receiver.url("/hooks/sales")}
        secret_env: {SECRET_ENV}
        headers: {{X-Team: sales}}
      - url: {receiver.url("/hooks/crm")}
        {crm_secret}
        fields: [transition_id, contact, to, traits.email]
  - on: {{transition: {{from: learning, to: prioritization}}}}
    webhooks:
      - url: {receiver.url("/hooks/nurture")}
        secret_env: {SECRET_ENV}
{extra_actions}""")
    return directory


def write_quiet_journey(directory: Path, receiver: Receiver) -> Path:
    """A second journey with a timer: a trial that goes quiet for two seconds is at risk, which
    posts to `receiver`'s /hooks/at-risk."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "quiet.yaml").write_text(f"""
id: quiet
version: 1
labels: {{fi: Hiljaiset, en: Quiet ones}}
entry: {{event: Signed Up}}
stages:
  - {{id: trial, labels: {{fi: Kokeilu, en: Trial}}}}
  - {{id: at-risk, labels: {{fi: Riskissä, en: At risk}}}}
rules:
  - {{id: went-quiet, from: [trial], to: at-risk, when: {{inactive_for: 2s}}}}
actions:
  - on: {{stage_entered: at-risk}}
    webhooks:
      - {{url: "{receiver.url('/hooks/at-risk')}", secret_env: {SECRET_ENV}}}
""")
    return directory


STAGES = {
    "learning": {"fi": "Oppiminen", "en": "Learning"},
    "prioritization": {"fi": "Priorisointi", "en": "Prioritization"},
    "selection": {"fi": "Valinta", "en": "Selection"},
}


def transition(contact: str, to: str = "selection", from_: str | None = "prioritization",
               *, journey: str = "deals", rule_id: str = "demo-request",
               transition_id: str | None = None, traits: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    """A transition record as the stager publishes it."""
    return {
        "v": 1,
        "type": "contact.stage_changed",
        "transition_id": transition_id or str(uuid.uuid4()),
        "journey": {"id": journey, "version": 2},
        "contact": contact,
        "traits": traits if traits is not None else {"email": f"{contact}@example.com"},
        "from": {"id": from_, "labels": STAGES[from_]} if from_ else None,
        "to": {"id": to, "labels": STAGES[to]},
        "at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "cause": {"kind": "event", "message_id": str(uuid.uuid4()), "event": "Demo Requested"},
        "rule_id": rule_id,
        "reason": "asked for a demo",
    }


async def produce_transitions(kafka: KafkaSettings, messages: list[dict[str, Any]],
                              raw: list[bytes] | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all",
                                enable_idempotence=True)
    await producer.start()
    try:
        futures = [
            await producer.send(kafka.transitions_topic, json.dumps(m).encode(),
                                key=m["contact"].encode())
            for m in messages
        ]
        futures += [await producer.send(kafka.transitions_topic, value, key=b"bad")
                    for value in raw or []]
        for future in futures:
            await future
    finally:
        await producer.stop()


def fast_settings(**overrides: Any) -> ActionsSettings:
    """Fast polling, a unique consumer group, no jitter, local receivers allowed."""
    values: dict[str, Any] = {
        "group_id": f"test-actions-{uuid.uuid4().hex[:8]}",
        "egress_allow": ("127.0.0.0/8",),
        "poll_timeout_ms": 100,
        "dispatch_poll_s": 0.05,
        "gauge_interval_s": 0.2,
        "retry_jitter": 0.0,
        "attempt_timeout_s": 2.0,
        "lease_s": 30.0,
        "shutdown_grace_s": 5.0,
    }
    values.update(overrides)
    return ActionsSettings(**values)


@dataclass
class RunningActions:
    api: httpx.AsyncClient
    settings: ActionsSettings
    app: Any


@asynccontextmanager
async def running_actions(
    kafka: KafkaSettings, database: DatabaseSettings, journeys_dir: Path, clock: Clock,
    settings: ActionsSettings | None = None,
) -> AsyncIterator[RunningActions]:
    """The actions service in this process, lifespan and all, with its API on an ASGI client."""
    settings = settings or fast_settings()
    app = create_app(kafka, database, settings, journeys_dir, clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://actions") as api:
            yield RunningActions(api, settings, app)


async def eventually(check: Callable[[], Awaitable[bool]] | Callable[[], bool],
                     timeout_s: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        await asyncio.sleep(0.05)


async def delivery_rows(engine: AsyncEngine, transition_ids: list[str]) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(
            sa.select(webhook_deliveries)
            .where(webhook_deliveries.c.transition_id.in_(transition_ids))
            .order_by(webhook_deliveries.c.created_at)
        ))


async def wait_attempts(engine: AsyncEngine, transitions: list[dict[str, Any]], attempts: int,
                        timeout_s: float = 20) -> None:
    """Wait until every delivery of `transitions` has `attempts` attempts recorded (the next
    attempt's time is written then, so a test may move its clock only after this)."""
    ids = [str(t["transition_id"]) for t in transitions]

    async def recorded() -> bool:
        rows = await delivery_rows(engine, ids)
        return bool(rows) and all(r.attempts == attempts and r.claim_token is None
                                  for r in rows)

    await eventually(recorded, timeout_s, f"{attempts} attempts recorded")


async def clear_deliveries(engine: AsyncEngine) -> None:
    """Forget earlier tests' deliveries: a worker delivers whatever is due in the database, and
    their receivers are gone."""
    async with engine.begin() as conn:
        await conn.execute(webhook_deliveries.delete())
        await conn.execute(webhook_endpoints.delete())


async def read_dead_letters(kafka: KafkaSettings, expect: int) -> list[Any]:
    """The dead-letter topic's records from its start, once `expect` are there (or ~10 s on)."""
    consumer = AIOKafkaConsumer(kafka.dead_letter_topic, bootstrap_servers=kafka.bootstrap_servers,
                                auto_offset_reset="earliest")
    await consumer.start()
    records: list[Any] = []
    try:
        for _ in range(20):
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 10)
            records.extend(r for messages in batch.values() for r in messages)
            if len(records) >= expect:
                break
    finally:
        await consumer.stop()
    return records
