"""Erasing a person, in both modes: afterwards no store holds them, and they stay out.

A canary person (a distinct email, a userId and an anonymousId linked to it, states in two
journeys, transitions, a delivered and a pending webhook) is erased through the API. Then a
dump of the whole database, in the embedded mode the SQLite file's bytes, and the services' logs
contain none of the canary's strings; new events for it are dropped by ingest and (distributed:
written straight to the topic) by the stager; a bystander is untouched; unsuppressing lets its
events in again.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.engine import make_engine, sqlite_engine
from shared.db.tables import contact_links, webhook_deliveries
from shared.kafka import durable_producer
from shared.settings import DatabaseSettings, KafkaSettings
from tests.actions_harness import Receiver, Reply, eventually, write_journey
from tests.deployments import Deployment, deploy, running
from tests.ingest_app import published
from tests.messages import produce, touchpoint

VISITS = """
id: visits
version: 1
labels: {fi: Käynnit, en: Visits}
stages:
  - {id: visitor, labels: {fi: Kävijä, en: Visitor}}
rules:
  - {id: any-page, to: visitor, when: {type: page}}
"""


@pytest.fixture
async def polku(mode: str, tmp_path: Path, receiver: Receiver, topic_names: KafkaSettings,
                database_for: DatabaseSettings | None) -> AsyncIterator[Deployment]:
    journeys = write_journey(tmp_path / "journeys", receiver)
    (journeys / "visits.yaml").write_text(VISITS)
    receiver.on("/hooks/crm", lambda count: Reply(500))  # stays pending: next try in an hour
    deployment = deploy(mode, journeys, tmp_path, topic_names, database_for,
                        POLKU_ACTIONS_RETRY_SCHEDULE_S="0,3600",
                        POLKU_INGEST_SUPPRESSION_REFRESH_S="0.3")
    async with running(deployment):
        yield deployment


class Person:
    def __init__(self, name: str) -> None:
        tag = uuid.uuid4().hex[:10]
        self.user = f"{name}-user-{tag}"
        self.anon = f"{name}-anon-{tag}"
        self.email = f"{name}.{tag}@example.com"

    @property
    def strings(self) -> tuple[str, str, str]:
        return (self.user, self.anon, self.email)

    def events(self) -> list[dict[str, Any]]:
        traits = {"email": self.email}
        return [
            {"type": "page", "name": "Pricing", "anonymousId": self.anon},
            {"type": "identify", "userId": self.user, "anonymousId": self.anon,
             "traits": traits},
            {"type": "track", "event": "Demo Requested", "userId": self.user,
             "anonymousId": self.anon, "context": {"traits": traits}},
            {"type": "page", "name": "Docs", "userId": self.user},
        ]


def database_engine(polku: Deployment) -> AsyncEngine:
    if polku.mode == "embedded":
        assert polku.data_dir is not None
        return sqlite_engine(f"sqlite+aiosqlite:///{polku.data_dir / 'polku.db'}")
    return make_engine(polku.extra["database"], pool_size=1)


async def dump(polku: Deployment) -> str:
    """Every row of every table as text (and pg_dump's, where it runs); in the embedded mode
    also the SQLite file's bytes, write-ahead log included."""
    parts: list[str] = []
    engine = database_engine(polku)
    try:
        async with engine.connect() as conn:
            if polku.mode == "embedded":
                names = (await conn.execute(sa.text(
                    "select name from sqlite_master where type = 'table'"))).scalars().all()
            else:
                names = (await conn.execute(sa.text(
                    "select table_name from information_schema.tables "
                    "where table_schema = 'public'"))).scalars().all()
            for name in names:
                rows = await conn.execute(sa.text(f'select * from "{name}"'))
                parts.extend(repr(tuple(row)) for row in rows)
    finally:
        await engine.dispose()
    if polku.mode == "embedded":
        assert polku.data_dir is not None
        for path in polku.data_dir.glob("polku.db*"):
            parts.append(path.read_bytes().decode("latin-1"))
    else:
        database: DatabaseSettings = polku.extra["database"]
        dumped = await asyncio.to_thread(
            subprocess.run, ["pg_dump", "--data-only", "-h", database.host, "-p",
                             str(database.port), "-U", database.user, database.db],
            capture_output=True, text=True, env={**os.environ, "PGPASSWORD": database.password})
        if dumped.returncode == 0:  # a pg_dump older than the server refuses: rows suffice
            parts.append(dumped.stdout)
    return "\n".join(parts)


async def metric(url: str, name: str) -> float:
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{url}/metrics")).text
    found = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def canary_records(polku: Deployment, kafka: KafkaSettings, person: Person) -> int:
    """Records keyed by one of the person's ids on the touchpoints log."""
    keys = {person.user.encode(), person.anon.encode()}
    if polku.mode == "distributed":
        return sum(1 for r in await published(kafka) if r.key in keys)
    engine = database_engine(polku)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(sa.text(
                "select count(*) from log_records where key in (:a, :b)"),
                {"a": person.user.encode(), "b": person.anon.encode()})).scalar_one())
    finally:
        await engine.dispose()


async def test_an_erased_person_is_nowhere_and_stays_out_until_unsuppressed(
    polku: Deployment, receiver: Receiver, topic_names: KafkaSettings,
) -> None:
    canary, bystander = Person("canary"), Person("bystander")
    async with polku.client() as http:
        for person in (canary, bystander):
            answer = await http.post("/v1/batch", json={"batch": person.events()})
            assert answer.status_code == 200, answer.text

    async def both_moved() -> bool:
        return all([await polku.stage(p.user, "deals") == "selection"
                    and await polku.stage(p.anon, "visits") == "visitor"
                    for p in (canary, bystander)])

    await eventually(both_moved, timeout_s=40, what="both people's stages")
    engine = database_engine(polku)
    try:
        async def deliveries_settled() -> bool:
            async with engine.connect() as conn:
                rows = (await conn.execute(
                    sa.select(webhook_deliveries.c.status, webhook_deliveries.c.attempts)
                    .where(webhook_deliveries.c.contact == canary.user))).all()
            return sorted(rows) == [("delivered", 1), ("pending", 1)]

        await eventually(deliveries_settled, timeout_s=40, what="a delivered and a pending hook")

        async def linked() -> bool:  # the identify merged each person's anonymous id
            async with engine.connect() as conn:
                rows = (await conn.execute(sa.select(contact_links.c.alias))).scalars().all()
            return sorted(rows) == sorted(p.anon for p in (canary, bystander))

        await eventually(linked, timeout_s=40, what="both people's ids linked")
    finally:
        await engine.dispose()  # nothing of the test holds the SQLite file during the erase
    before = await dump(polku)
    assert all(s in before for s in canary.strings + bystander.strings)

    async with httpx.AsyncClient(base_url=polku.api.url, timeout=30) as admin:
        answer = await admin.delete(f"/v1/contacts/{canary.anon}")  # the alias finds the person
        assert answer.status_code == 200, answer.text
        receipt = answer.json()
        assert (await admin.get(f"/v1/erasures/{receipt['receipt_id']}")).json() == receipt
    removed = receipt["removed"]
    assert len(receipt["id_hashes"]) == 2
    assert removed["contact_states"] >= 2  # the user's journeys (the merge ended the alias's)
    assert removed["transitions"] >= 3 and removed["journal"] == 4
    assert removed["contact_links"] == 1
    assert (removed["deliveries_cancelled"], removed["delivery_bodies_erased"]) == (1, 2)
    if polku.mode == "embedded":
        assert removed["log_records"] >= 4 and receipt["kafka_expires_at"] is None
    else:
        assert removed["log_records"] == 0 and receipt["kafka_expires_at"] is not None

    after = await dump(polku)
    for text in canary.strings:
        assert text not in after, f"{text} is still stored"
    assert all(s in after for s in bystander.strings)
    assert await polku.stage(bystander.user, "deals") == "selection"
    assert await polku.contact(canary.user) is None

    # New events: answered as usual, dropped by ingest (its list reloads every 0.3 s).
    await asyncio.sleep(1.0)
    on_log = await canary_records(polku, topic_names, canary)
    async with polku.client() as http:
        answer = await http.post("/v1/batch", json={"batch": canary.events()})
        assert answer.status_code == 200 and answer.json()["accepted"] == 4, answer.text
    assert await metric(polku.api.url, "polku_ingest_events_suppressed_total") == 4
    assert await canary_records(polku, topic_names, canary) == on_log

    if polku.mode == "distributed":  # an event that reached the topic anyway: the stager's
        producer = durable_producer(topic_names)
        await producer.start()
        try:
            late = touchpoint(canary.user, datetime.now(UTC), event="Demo Requested",
                              context={"traits": {"email": canary.email}})
            await produce(producer, topic_names.touchpoints_topic, [late])
        finally:
            await producer.stop()
        stager = polku.processes[1].url

        async def dropped() -> bool:
            suppressed = 'polku_stager_events_total{outcome="suppressed"}'
            return await metric(stager, suppressed) >= 1

        await eventually(dropped, timeout_s=30, what="the stager dropping the late event")
        assert await polku.contact(canary.user) is None
        assert canary.email not in await dump(polku)

    for process in polku.processes:  # the services never logged the person
        assert process.log_path is not None
        logged = process.log_path.read_text(errors="replace")
        assert not any(text in logged for text in canary.strings)

    async with httpx.AsyncClient(base_url=polku.api.url, timeout=30) as admin:
        for contact_id in (canary.user, canary.anon):
            answer = await admin.delete(f"/v1/suppressions/{contact_id}")
            assert answer.json()["unsuppressed"] is True, answer.text
    await asyncio.sleep(1.0)
    async with polku.client() as http:
        answer = await http.post("/v1/batch", json={"batch": canary.events()})
        assert answer.status_code == 200, answer.text

    async def back() -> bool:
        return await polku.stage(canary.user, "deals") == "selection"

    await eventually(back, timeout_s=40, what="the unsuppressed person's new events")
