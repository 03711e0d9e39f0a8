"""The built-in webhook receiver of `polku dev`: verifies each delivery and shows it.

It stands where marketing automation or a CRM would: the example journeys send to
${POLKU_DEV_SINK_URL}/hooks/<name>, which `polku dev` points here (port POLKU_DEV_SINK_PORT).
Each delivery is checked the way a receiver should check it (Standard Webhooks signature over
id.timestamp.body, timestamp within five minutes) and then printed as one line (journey, stage
change, reason; never the contact or traits) and kept in memory for `GET /deliveries`. An
unverifiable delivery is answered 401, which the worker retries and finally dead-letters, so a
wrong secret shows up as it would in production.
"""

from __future__ import annotations

import hmac
import json
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response

from services.actions.signing import SecretUnavailable, parse_secrets, signature

TOLERANCE_S = 300
KEPT = 500


def verify(secret_text: str, headers: Any, body: bytes, now: float) -> str | None:
    """None when the delivery is authentic, else what is wrong with it."""
    webhook_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp", "")
    given = headers.get("webhook-signature", "").split()
    if not webhook_id or not stamp.isdigit() or not given:
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    if abs(now - int(stamp)) > TOLERANCE_S:
        return "webhook-timestamp is more than five minutes off"
    try:
        keys = parse_secrets(secret_text)
    except SecretUnavailable as exc:
        return f"the sink's secret is unusable: {exc}"
    expected = [signature(key, webhook_id, int(stamp), body) for key in keys]
    if any(hmac.compare_digest(e, g) for e in expected for g in given):
        return None
    return "no signature matches the secret"


def describe(hook: str, body: bytes) -> str:
    """One line for the console: which hook, journey and stage change; no personal data."""
    try:
        data = json.loads(body)
    except ValueError:
        return f"{hook}: (body is not JSON)"

    def stage(value: Any) -> str:
        return str(value.get("id", "?")) if isinstance(value, dict) else str(value)

    journey = data.get("journey")
    line = f"{hook:<18}"
    if isinstance(journey, dict):
        line += f" {journey.get('id')}:"
    if "from" in data:  # a journey's `fields` may leave parts of the body out
        line += " (start)" if data["from"] is None else f" {stage(data['from'])}"
        line += " ->"
    if "to" in data:
        line += f" {stage(data['to'])}"
    reason = str(data.get("reason") or "")
    if reason:
        line += f"  ({reason if len(reason) <= 70 else reason[:67] + '...'})"
    return line


def create_sink(secret: Callable[[], str], show: Callable[[str], None] = print) -> FastAPI:
    """The sink's app; `secret()` gives the current whsec_ secret(s) to verify with."""
    app = FastAPI(title="Polku dev webhook sink", docs_url=None, redoc_url=None)
    received: deque[dict[str, Any]] = deque(maxlen=KEPT)

    @app.post("/hooks/{hook}")
    async def receive(hook: str, request: Request) -> Response:
        body = await request.body()
        problem = verify(secret(), request.headers, body, time.time())
        entry = {"hook": hook, "webhook_id": request.headers.get("webhook-id"),
                 "verified": problem is None, "problem": problem,
                 "received_at": time.time()}
        try:
            entry["body"] = json.loads(body)
        except ValueError:
            entry["body"] = None
        received.append(entry)
        if problem is not None:
            show(f"  webhook  REFUSED {hook}: {problem}")
            return Response(status_code=401)
        show(f"  webhook  signed ok  {describe(hook, body)}")
        return Response(status_code=204)

    @app.get("/deliveries")
    async def deliveries() -> dict[str, Any]:
        """What the sink received, newest last (at most the last 500)."""
        return {"deliveries": list(received)}

    return app
