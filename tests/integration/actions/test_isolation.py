"""Outbound safety and isolation: internal addresses are refused after DNS resolution, and a
slow endpoint's breaker keeps it from delaying the others."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from services.actions.deliveries import endpoint_id
from shared.clock import ManualClock
from shared.settings import DatabaseSettings, KafkaSettings
from tests.actions_harness import (
    SECRET_ENV,
    Receiver,
    Reply,
    delivery_rows,
    eventually,
    fast_settings,
    produce_transitions,
    running_actions,
    transition,
)


def journey_posting_to(directory: Path, urls: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    hooks = "\n".join(f"      - {{url: '{url}', secret_env: {SECRET_ENV}}}" for url in urls)
    (directory / "deals.yaml").write_text(f"""
id: deals
version: 2
labels: {{fi: Kaupat, en: Deals}}
stages:
  - {{id: prioritization, labels: {{fi: Priorisointi, en: Prioritization}}}}
  - {{id: selection, labels: {{fi: Valinta, en: Selection}}}}
rules:
  - {{id: demo-request, to: selection, when: {{event: Demo Requested}}}}
actions:
  - on: {{stage_entered: selection}}
    webhooks:
{hooks}
""")
    return directory


async def test_urls_that_resolve_to_internal_addresses_are_refused_without_the_allowlist(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    receiver: Receiver, tmp_path: Path,
) -> None:
    port = receiver.port
    urls = [
        f"http://localhost:{port}/by-name",  # a hostname that resolves to 127.0.0.1
        f"http://127.0.0.1:{port}/literal",
        f"http://[::ffff:127.0.0.1]:{port}/mapped",
        f"http://0x7f000001:{port}/hex",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.64.0.1/cgnat",
    ]
    handoff = transition("ssrf-1")
    settings = fast_settings(egress_allow=())
    async with running_actions(topic_names, database_settings,
                               journey_posting_to(tmp_path / "j", urls), ManualClock(), settings):
        await produce_transitions(topic_names, [handoff])

        async def all_failed() -> bool:
            rows = await delivery_rows(engine, [handoff["transition_id"]])
            return len(rows) == len(urls) and all(r.status == "failed" for r in rows)

        await eventually(all_failed, what="every internal URL refused")
    rows = {r.endpoint_id: r for r in await delivery_rows(engine, [handoff["transition_id"]])}
    assert receiver.requests() == []
    for url in urls:
        row = rows[endpoint_id(url)]
        assert row.attempts == 1 and row.last_status is None  # refused once, never retried
        assert row.last_error.startswith("egress refused:"), row.last_error
    assert "127.0.0.1 is loopback" in rows[endpoint_id(urls[0])].last_error
    assert "loopback (127.0.0.1 embedded in IPv6)" in rows[endpoint_id(urls[2])].last_error
    assert "cloud metadata" in rows[endpoint_id(urls[4])].last_error
    assert "cloud metadata" in rows[endpoint_id(urls[5])].last_error
    assert "carrier-grade NAT" in rows[endpoint_id(urls[6])].last_error


async def test_the_allowlist_lets_an_operator_reach_local_receivers(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    receiver: Receiver, tmp_path: Path,
) -> None:
    urls = [f"http://localhost:{receiver.port}/by-name", receiver.url("/literal")]
    handoff = transition("allowed-1")
    settings = fast_settings(egress_allow=("127.0.0.0/8",))
    async with running_actions(topic_names, database_settings,
                               journey_posting_to(tmp_path / "j", urls), ManualClock(), settings):
        await produce_transitions(topic_names, [handoff])
        await eventually(lambda: len(receiver.requests()) == 2)
    assert {r.path for r in receiver.requests()} == {"/by-name", "/literal"}


async def test_a_slow_endpoint_trips_its_breaker_and_never_delays_the_others(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    receiver: Receiver, tmp_path: Path,
) -> None:
    receiver.on("/slow", lambda n: Reply(200, delay_s=3))
    urls = [receiver.url("/slow"), receiver.url("/fast")]
    settings = fast_settings(attempt_timeout_s=0.3, lease_s=5, endpoint_concurrency=2,
                             breaker_failures=3, breaker_open_s=60, retry_schedule_s=(0, 600))
    handoffs = [transition(f"busy-{i}") for i in range(40)]
    async with running_actions(topic_names, database_settings,
                               journey_posting_to(tmp_path / "j", urls), ManualClock(),
                               settings) as svc:
        started = time.monotonic()
        await produce_transitions(topic_names, handoffs)
        await eventually(lambda: len(receiver.requests("/fast")) == 40, timeout_s=15)
        fast_took = time.monotonic() - started
        slow = endpoint_id(urls[0])

        async def breaker_open() -> bool:
            metrics = (await svc.api.get("/metrics")).text
            return f'polku_actions_breaker_state{{endpoint="{slow}"}} 2.0' in metrics

        await eventually(breaker_open, timeout_s=10, what="the slow endpoint's breaker open")
    # Unisolated, 40 three-second answers two at a time would hold the fast ones for a minute.
    assert fast_took < 8, fast_took
    assert len(receiver.requests("/slow")) <= settings.breaker_failures + 2
    rows = [r for r in await delivery_rows(engine, [h["transition_id"] for h in handoffs])
            if r.endpoint_id == slow]
    # While the breaker is open the slow endpoint's deliveries wait without spending attempts.
    assert sum(1 for r in rows if r.attempts == 0 and r.status == "pending") >= 40 - 5
