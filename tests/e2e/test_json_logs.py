"""POLKU_LOG_FORMAT=json, as an operator's log shipper sees it: every line each service writes
is one JSON object with time, level, service, logger and message, and no line anywhere holds
a person's data.

A canary (one random token inside a userId, an email, a trait and a property) goes the whole way:
accepted by ingest, staged, delivered by a webhook and dead-lettered by another; refused by
ingest in a bad request and a bad batch item; written to the touchpoints topic as a poison
message the stager dead-letters; and finally erased. The canary must then be in no log line.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared.settings import DatabaseSettings, KafkaSettings
from tests.actions_harness import Receiver, Reply, eventually, read_dead_letters, write_journey
from tests.deployments import Deployment, deploy, running

REQUIRED = ("time", "level", "service", "logger", "message")
JSON_LOGS = {"POLKU_LOG_FORMAT": "json", "POLKU_LOG_LEVEL": "info",
             # One attempt: the failing endpoint's delivery is dead-lettered at once.
             "POLKU_ACTIONS_RETRY_SCHEDULE_S": "0"}


@pytest.fixture
def canary() -> str:
    return f"cnry{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def polku(mode: str, tmp_path: Path, receiver: Receiver, topic_names: KafkaSettings,
                database_for: DatabaseSettings | None) -> AsyncIterator[Deployment]:
    receiver.on("/hooks/crm", lambda _: Reply(500))  # dead-lettered after its one attempt
    journeys = write_journey(tmp_path / "journeys", receiver)
    deployment = deploy(mode, journeys, tmp_path, topic_names, database_for, **JSON_LOGS)
    async with running(deployment):
        yield deployment


def events(canary: str) -> list[dict[str, Any]]:
    user = f"{canary}-user"
    return [
        {"type": "identify", "userId": user, "messageId": str(uuid.uuid4()),
         "traits": {"email": f"{canary}@example.com", "name": f"{canary} Name"}},
        {"type": "track", "event": "Demo Requested", "userId": user,
         "messageId": str(uuid.uuid4()), "properties": {"note": f"{canary} note"},
         "context": {"traits": {"email": f"{canary}@example.com"}}},
    ]


async def send_the_canary(polku: Deployment, canary: str) -> None:
    async with polku.client() as http:
        answer = await http.post("/v1/batch", json={"batch": events(canary)})
        assert answer.status_code == 200, answer.text
        # Refused whole: an invalid field holding the canary.
        answer = await http.post("/v1/track", json={
            "userId": f"{canary}-user", "event": "Demo Requested",
            "timestamp": f"{canary}@example.com"})
        assert answer.status_code == 400, answer.text
        # Refused in part: a batch item without an id, with the canary in its traits.
        answer = await http.post("/v1/batch", json={"batch": [
            {"type": "identify", "traits": {"email": f"{canary}@example.com"}},
            {"type": "track", "event": "Page Viewed", "userId": f"{canary}-user"}]})
        assert answer.status_code == 200 and answer.json()["rejected"], answer.text
        # Not JSON at all.
        answer = await http.post("/v1/track", content=f'{{"userId": "{canary}',
                                 headers={"content-type": "application/json"})
        assert answer.status_code == 400, answer.text


async def wait_for_the_deliveries(polku: Deployment, receiver: Receiver, canary: str) -> None:
    await eventually(lambda: bool(receiver.requests("/hooks/sales")), 30, "the sales webhook")

    async def crm_dead_lettered() -> bool:
        async with httpx.AsyncClient(base_url=polku.deliveries.url, timeout=10) as http:
            answer = await http.get("/v1/deliveries", params={"status": "failed"})
        return any(d["contact"] == f"{canary}-user" for d in answer.json()["deliveries"])

    await eventually(crm_dead_lettered, 30, "the crm delivery dead-lettered")


async def erase(polku: Deployment, canary: str, request_id: str) -> None:
    async with httpx.AsyncClient(base_url=polku.api.url, timeout=30) as http:
        answer = await http.delete(f"/v1/contacts/{canary}-user",
                                   headers={"X-Request-ID": request_id})
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-request-id"] == request_id


async def poison(kafka: KafkaSettings, canary: str) -> None:
    """A message no ingest would write, with the canary in the fields the stager checks."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(kafka.touchpoints_topic, key=f"{canary}-user".encode(),
                                     value=json.dumps({
                                         "v": 1, "type": f"{canary}@example.com",
                                         "contact": f"{canary}-user",
                                         "traits": {"email": f"{canary}@example.com"}}).encode())
    finally:
        await producer.stop()


def log_lines(polku: Deployment) -> dict[str, list[str]]:
    """Each process's log, after a clean stop (SIGTERM), so its shutdown lines are in it."""
    logs = {}
    for process in polku.processes:
        process.terminate()
        assert process.log_path is not None
        logs[process.name] = process.log_path.read_text().splitlines()
    return logs


def parsed(service: str, lines: list[str]) -> list[dict[str, Any]]:
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"{service} wrote a line that is not JSON: {line!r}") from None
        assert isinstance(record, dict), line
        assert all(isinstance(record.get(k), str) and record[k] for k in REQUIRED), line
        assert record["time"].endswith("Z"), line
        assert datetime.fromisoformat(record["time"]).utcoffset().total_seconds() == 0
        assert record["service"] == service, line
        assert record["level"] in {"debug", "info", "warning", "error", "critical"}, line
        records.append(record)
    return records


async def test_json_logs_carry_no_personal_data_through_the_whole_pipeline(
    polku: Deployment, receiver: Receiver, canary: str, topic_names: KafkaSettings,
) -> None:
    await send_the_canary(polku, canary)
    await wait_for_the_deliveries(polku, receiver, canary)
    if polku.mode == "distributed":
        await poison(topic_names, canary)
        dead = await read_dead_letters(topic_names, 1)
        assert any(canary.encode() in (record.key or b"") for record in dead)
    request_id = f"ops-{uuid.uuid4().hex}"
    await erase(polku, canary, request_id)

    logs = log_lines(polku)
    records = {name: parsed(name, lines) for name, lines in logs.items()}
    for name, lines in logs.items():
        leaked = [line for line in lines if canary in line]
        assert not leaked, f"{name} logged personal data: {leaked}"
        assert records[name], f"{name} logged nothing"
    everything = [r for service in records.values() for r in service]
    erasures = [r for r in everything if r["message"].startswith("erasure ")]
    assert [r.get("request_id") for r in erasures] == [request_id]
    if polku.mode == "distributed":
        assert any("dead-lettered" in r["message"] and r["level"] == "warning"
                   for r in records["stager"])
        assert any("attempt" in r["message"] for r in records["actions"])


async def test_ingest_answers_a_request_id_and_keeps_only_a_sane_one(polku: Deployment) -> None:
    async with httpx.AsyncClient(base_url=polku.api.url, timeout=10) as http:
        given = (await http.get("/readyz", headers={"X-Request-ID": "trace-4bf9:span.01"}))
        made = (await http.get("/readyz"))
        garbled = (await http.get("/readyz", headers={"X-Request-ID": 'a "quoted" id'}))
        too_long = (await http.get("/readyz", headers={"X-Request-ID": "x" * 129}))
    assert given.headers["x-request-id"] == "trace-4bf9:span.01"
    for answer in (made, garbled, too_long):
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"])
    assert made.headers["x-request-id"] != garbled.headers["x-request-id"]
