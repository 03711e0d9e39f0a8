"""kill -9 of the embedded Polku while events stream in: nothing acknowledged is lost.

One `polku dev` process takes events over HTTP, applies them and delivers webhooks. It is
killed with SIGKILL four times mid-stream and started again each time on the same SQLite file.
The sender behaves as an SDK: a batch refused or cut off is sent again with the same messageIds.
Afterwards the file is read directly: every acknowledged messageId was applied, every contact
moved exactly once, and every contact's webhook arrived with one stable webhook-id.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from tests.actions_harness import Receiver, eventually, write_journey
from tests.deployments import Deployment, deploy, issue_write_key, post_until_acknowledged

CONTACTS = 600
BATCH = 20  # contacts per request; each contact gets a page view and a demo request


def batch_for(contacts: list[str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for contact in contacts:
        items.append({"type": "page", "name": "Pricing", "userId": contact,
                      "messageId": f"{contact}-page"})
        items.append({"type": "track", "event": "Demo Requested", "userId": contact,
                      "messageId": f"{contact}-demo"})
    return items


async def test_kill_9_loses_no_acknowledged_event(tmp_path: Path, receiver: Receiver) -> None:
    polku = deploy("embedded", write_journey(tmp_path / "journeys", receiver), tmp_path,
                   None, None)
    try:
        polku.start()
        polku.write_key = await issue_write_key(polku)
        await crash_while_sending(polku, receiver)
    finally:
        polku.kill()


async def crash_while_sending(polku: Deployment, receiver: Receiver) -> None:
    run = uuid.uuid4().hex[:6]
    contacts = [f"crash-{run}-{i}" for i in range(CONTACTS)]
    acknowledged: list[str] = []

    async def send_all() -> None:
        async with polku.client() as http:
            for i in range(0, CONTACTS, BATCH):
                chunk = contacts[i:i + BATCH]
                await post_until_acknowledged(http, batch_for(chunk))
                acknowledged.extend(chunk)
                await asyncio.sleep(0.2)

    sender = asyncio.create_task(send_all())
    mid_stream = 0
    try:
        for _ in range(4):
            await asyncio.sleep(1.2)
            mid_stream += not sender.done()
            polku.kill()  # SIGKILL: no shutdown hook runs
            await asyncio.to_thread(polku.start)
        await asyncio.wait_for(sender, 180)
    finally:
        if not sender.done():
            sender.cancel()
    assert len(acknowledged) == CONTACTS
    assert mid_stream == 4, "every kill should land while events are still being sent"
    assert polku.data_dir is not None
    database = polku.data_dir / "polku.db"

    def query(sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(database) as conn:
            return conn.execute(sql).fetchall()

    def all_applied() -> bool:
        (count,), = query(f"select count(*) from processed_messages "
                          f"where contact like 'crash-{run}-%'")
        return bool(count == 2 * CONTACTS)

    await eventually(all_applied, timeout_s=60, what="every acknowledged event applied")
    paths: dict[str, list[tuple[str | None, str]]] = {}
    for contact, from_stage, to_stage in query(
            f"select contact, from_stage, to_stage from transitions "
            f"where contact like 'crash-{run}-%' order by contact, seq"):
        paths.setdefault(contact, []).append((from_stage, to_stage))
    # Each move exactly once, whatever the kills interrupted: into the first stage with the
    # page view, then to selection with the demo request.
    assert paths == {c: [(None, "learning"), ("learning", "selection")] for c in contacts}

    def every_contact_reached_sales() -> bool:
        return {r.verified()["contact"] for r in receiver.requests("/hooks/sales")} == set(
            contacts)

    await eventually(every_contact_reached_sales, timeout_s=90, what="every webhook")
    # At least once on the wire (a kill may repeat an attempt), one webhook-id per transition.
    assert len({r.webhook_id for r in receiver.requests("/hooks/sales")}) == CONTACTS
