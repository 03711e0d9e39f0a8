"""`polku dev` on the shipped example journeys, as a new user runs it.

The example journeys send their webhooks to `${POLKU_DEV_SINK_URL}`, which `polku dev` sets to
its own sink: with POLKU_DEV_SINK_PORT moved, the deliveries still arrive (and the b2b-cto
sales hand-off carries the contact's first-touch channel its `fields:` selects).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.deployments import deploy, issue_write_key
from tests.processes import ROOT

EXAMPLES = ROOT / "journeys"


async def sink_deliveries(sink: str, hook: str, contact: str, timeout_s: float = 30
                          ) -> list[dict[str, Any]]:
    """The sink's verified deliveries to `hook` about `contact`, once there is one."""
    found: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=sink, timeout=5) as http:
        for _ in range(int(timeout_s * 4)):
            answer = await http.get("/deliveries")
            assert answer.status_code == 200, answer.text
            found = [d for d in answer.json()["deliveries"]
                     if d["hook"] == hook and (d["body"] or {}).get("contact") == contact]
            if found:
                return found
            await asyncio.sleep(0.25)
    return found


async def test_example_journeys_deliver_to_the_sink_on_a_moved_port(tmp_path: Path) -> None:
    polku = deploy("embedded", EXAMPLES, tmp_path, None, None)  # on a free sink port
    sink_port = polku.api.env["POLKU_DEV_SINK_PORT"]
    assert sink_port != "8099"
    contact = f"cto-{uuid.uuid4().hex[:8]}"
    try:
        polku.start()
        polku.write_key = await issue_write_key(polku)
        async with polku.client() as http:
            for item in (
                {"type": "page", "name": "Pricing", "userId": contact,
                 "context": {"campaign": {"medium": "cpc", "source": "google"}}},
                {"type": "identify", "userId": contact,
                 "traits": {"persona": "cto", "email": "maija@example.com"}},
                {"type": "track", "event": "Demo Requested", "userId": contact},
            ):
                answer = await http.post(f"/v1/{item.pop('type')}", json=item)
                assert answer.status_code == 200, answer.text

        [delivery] = await sink_deliveries(f"http://127.0.0.1:{sink_port}", "sales-handoff",
                                           contact)

        assert delivery["verified"], delivery["problem"]
        assert delivery["body"]["to"]["id"] == "selection"
        assert delivery["body"]["first_touch"]["channel"] == "paid_search"
    finally:
        polku.kill()
