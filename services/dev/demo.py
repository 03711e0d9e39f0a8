"""Demo traffic for `polku dev --demo`: contacts of several personas walking the example journeys.

Each demo contact follows its persona's script of touchpoints (the channels and steps the
journey articles describe: ads, search, blog, guides, webinars, demo and quote requests,
purchases, onboarding, support, renewal...). Scripts span weeks, so event times are set in the
past (event time drives the stages, arrival time does not): a contact whose script ends with a
silence was last seen weeks ago, and the stager's timers move it (at risk, gone cold) within a
second or so of its last event. Some contacts stall, some regress, some come back.

The traffic goes through the public HTTP API with the `dev` write key, like any website's.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

log = logging.getLogger("polku.demo")


@dataclass(frozen=True)
class Step:
    day: float  # days after the contact's first touchpoint
    type: str  # identify | track | page
    name: str = ""  # event (track) or page name (page)
    properties: tuple[tuple[str, Any], ...] = ()


def track(day: float, event: str, **properties: Any) -> Step:
    return Step(day, "track", event, tuple(properties.items()))


def page(day: float, name: str, path: str, channel: str) -> Step:
    return Step(day, "page", name, (("path", path), ("channel", channel)))


def identify(day: float) -> Step:
    return Step(day, "identify")


@dataclass(frozen=True)
class Script:
    persona: str
    traits: tuple[tuple[str, Any], ...]
    steps: tuple[Step, ...]
    silence_days: float = 0.0  # time since the last step: long silences trip the timers
    weight: int = 1


def _b2b(**traits: Any) -> tuple[tuple[str, Any], ...]:
    return (("persona", "cto"), ("company", "Esimerkki Oy"), ("employees", 120), *traits.items())


_B2B_LEARNING = (
    identify(0),
    page(0, "Blog: what a data platform costs", "/blog/data-platform-costs", "organic_search"),
    page(1, "Guide", "/guides/migration", "social"),
    track(1, "Guide Downloaded", title="Migration checklist"),
    track(6, "Webinar Attended", title="Platform in 30 minutes"),
    track(8, "Pricing Viewed", channel="direct"),
)

SCRIPTS: tuple[Script, ...] = (
    # A technology leader who becomes a customer and settles into everyday use.
    Script("cto-customer", _b2b(), (
        *_B2B_LEARNING,
        track(10, "Demo Requested", channel="direct"),
        track(12, "Meeting Booked"),
        track(20, "Contract Signed", value=24000),
        track(22, "Kickoff Held"),
        *(track(23 + i, "Feature Used", feature="reports") for i in range(3)),
        track(27, "Onboarding Completed"),
        track(40, "Support Call", channel="phone"),
    ), weight=2),
    # A lead who learns, gets qualified, then goes silent: back to awareness after 60 days.
    Script("cto-stalled-lead", _b2b(), _B2B_LEARNING, silence_days=65),
    # A customer who stops using the product: at risk after 30 quiet days.
    Script("cto-quiet-customer", _b2b(), (
        *_B2B_LEARNING,
        track(9, "Quote Requested"),
        track(15, "Contract Signed", value=12000),
        track(16, "Onboarding Started"),
    ), silence_days=35),
    # A self-serve sign-up who activates and gets engaged.
    Script("saas-engaged", (("plan", "trial"),), (
        page(0, "Home", "/", "paid_social"),
        track(0, "Signed Up"),
        track(0.1, "Project Created"),
        *(track(1 + i, "Feature Used", feature="dashboards") for i in range(5)),
        track(9, "Renewal Reminder Opened", channel="email"),
    ), weight=2),
    # Signs up and never activates: at risk a week later.
    Script("saas-stuck", (("plan", "trial"),), (
        page(0, "Pricing", "/pricing", "organic_search"),
        track(0, "Signed Up"),
    ), silence_days=9),
    # Activates, goes quiet for three weeks (at risk), then comes back today.
    Script("saas-comeback", (("plan", "team"),), (
        track(0, "Signed Up"),
        track(0.2, "Account Activated"),
        track(1, "Feature Used", feature="export"),
        track(22, "Signed In"),
    )),
    # Finds a product from a search ad and buys it; the parcel is tracked.
    Script("shopper-buyer", (), (
        page(0, "Product", "/products/trail-shoe", "paid_search"),
        page(0.01, "Product reviews", "/products/trail-shoe/reviews", "paid_search"),
        track(0.02, "Order Completed", revenue=129.9, currency="EUR"),
        track(2, "Shipment Tracked", channel="email"),
        track(9, "Review Submitted", rating=5),
    ), weight=2),
    # Compares products and leaves: after 30 quiet days evaluation goes cold (win-back hook).
    Script("shopper-browser", (), (
        page(0, "Blog: choosing running shoes", "/blog/choosing", "organic_search"),
        page(0.1, "Product", "/products/road-shoe", "display"),
        track(0.2, "Calculator Used", tool="size-guide"),
    ), silence_days=34),
)


def message(contact: str, script: Script, step: Step, at: datetime,
            identified: bool = True) -> dict[str, Any]:
    """One call as a website's SDK sends it: always the browser's anonymousId, and the userId
    from the identify on (which links the two: docs/identity.md)."""
    item: dict[str, Any] = {
        "type": step.type,
        "anonymousId": f"anon-{contact}",
        "messageId": str(uuid.uuid4()),
        "timestamp": at.isoformat().replace("+00:00", "Z"),
    }
    if identified or step.type == "identify":
        item["userId"] = contact
    if step.type == "identify":
        item["traits"] = {"email": f"{contact}@example.com", **dict(script.traits)}
    elif step.type == "track":
        item["event"] = step.name
        item["properties"] = dict(step.properties)
    else:
        item["name"] = step.name
        item["properties"] = dict(step.properties)
    return item


async def walk(client: httpx.AsyncClient, contact: str, script: Script, pace_s: float,
               now: datetime) -> None:
    """Post the contact's touchpoints one by one, `pace_s` apart, with their event times."""
    last = script.steps[-1].day
    start = now - timedelta(days=last + script.silence_days)
    identified = False
    for step in script.steps:
        at = start + timedelta(days=step.day)
        identified = identified or step.type == "identify"
        answer = await client.post("/v1/batch", json={
            "batch": [message(contact, script, step, at, identified)]
        })
        if answer.status_code >= 300:
            log.warning("demo event refused: %s %s", answer.status_code, answer.text[:200])
        await asyncio.sleep(pace_s * random.uniform(0.5, 1.5))


async def run_demo(base_url: str, write_key: str, contacts_per_s: float,
                   stop: asyncio.Event, pace_s: float = 0.4) -> None:
    """Start a new demo contact every 1/contacts_per_s seconds until `stop` is set."""
    run = secrets.token_hex(2)
    weighted = [s for s in SCRIPTS for _ in range(s.weight)]
    walking: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(base_url=base_url, auth=(write_key, ""), timeout=10) as client:
        n = 0
        while not stop.is_set():
            n += 1
            script = random.choice(weighted)
            contact = f"demo-{script.persona}-{run}-{n:04d}"
            task = asyncio.create_task(
                _walk_safely(client, contact, script, pace_s), name=f"demo-{n}")
            walking.add(task)
            task.add_done_callback(walking.discard)
            try:
                await asyncio.wait_for(stop.wait(), 1 / contacts_per_s)
            except TimeoutError:
                pass
        for task in walking:
            task.cancel()
        await asyncio.gather(*walking, return_exceptions=True)


async def _walk_safely(client: httpx.AsyncClient, contact: str, script: Script,
                       pace_s: float) -> None:
    try:
        await walk(client, contact, script, pace_s, datetime.now(UTC))
    except httpx.HTTPError as exc:
        log.warning("demo traffic could not reach the API (%s)", type(exc).__name__)
