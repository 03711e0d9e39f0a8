"""What ops see of a running Polku: every service's /metrics passes `promtool check metrics` and has
no `*_created` series, and a real Prometheus scraping Polku under a little traffic answers every
query of the Grafana dashboard (deploy/grafana/polku.json) with data and evaluates every alert
rule (deploy/prometheus/alerts.yml) without error.

The traffic is made to reach every panel: contacts moving stage, a timer moving some of them,
an identify linking two ids, refused requests, a poison record dead-lettered by the stager, and
webhooks to a receiver that takes them, one that fails every other time (retries), one that
always fails (dead letters, an open breaker) and one that answers 410 (a disabled endpoint). It
comes in two rounds with scrapes in between: a series Prometheus first sees after its only
increase has no rate, so the second round is what the rates and quantiles show.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.actions.deliveries import endpoint_id
from shared.settings import DatabaseSettings, KafkaSettings
from tests.actions_harness import (
    SECRET_ENV,
    Receiver,
    Reply,
    eventually,
    write_journey,
    write_quiet_journey,
)
from tests.conftest import _fresh_database
from tests.deployments import Deployment, deploy, issue_write_key
from tests.prometheus import DEPLOY, promtool, query, running_prometheus

DASHBOARD = DEPLOY / "grafana" / "polku.json"
RULES = DEPLOY / "prometheus" / "alerts.yml"
# What Grafana would put in place of its variables, for a range that holds the whole run.
VARIABLES = {"$__rate_interval": "1m", "$__range": "5m", "$__interval": "1s", "$journey": ".*"}
# Retries in a blink; an open breaker probes again after a second (and keeps failing, on the
# broken endpoint), so the failing endpoints keep producing attempts and dead letters.
SETTINGS = {"POLKU_ACTIONS_RETRY_SCHEDULE_S": "0,0.2,0.2", "POLKU_ACTIONS_BREAKER_OPEN_S": "1"}
JOBS = {"ingest": "polku-ingest", "stager": "polku-stager", "actions": "polku-actions",
        "dev": "polku-dev"}


def journeys(directory: Path, receiver: Receiver) -> Path:
    """The deals journey of the actions tests, whose selection also goes to a failing endpoint
    and to one that is gone, and a journey whose trial goes quiet after two seconds."""
    extra = f"""  - on: {{stage_entered: selection}}
    webhooks:
      - {{url: "{receiver.url('/hooks/broken')}", secret_env: {SECRET_ENV}}}
      - {{url: "{receiver.url('/hooks/flaky')}", secret_env: {SECRET_ENV}}}
      - {{url: "{receiver.url('/hooks/gone')}", secret_env: {SECRET_ENV}}}
"""
    write_journey(directory, receiver, extra_actions=extra)
    write_quiet_journey(directory, receiver)
    return directory


def failing_receiver(receiver: Receiver) -> Receiver:
    receiver.on("/hooks/broken", lambda count: Reply(status=500))
    receiver.on("/hooks/flaky", lambda count: Reply(status=500 if count % 2 == 0 else 204))
    receiver.on("/hooks/gone", lambda count: Reply(status=410))
    return receiver


def track(event: str, contact: str, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "event": event, "userId": contact,
            "messageId": str(uuid.uuid4()), **extra}


async def send_traffic(polku: Deployment, receiver: Receiver, contacts: int = 12) -> None:
    """One round; returns once its webhooks have all arrived (the failing ones attempted)."""
    tag = uuid.uuid4().hex[:6]
    people = [f"obs-{tag}-{i}" for i in range(contacts)]
    async with polku.client() as http:
        batch = [track("Demo Requested", p) for p in people]
        batch += [track("Signed Up", p) for p in people[: contacts // 2]]
        batch.append({"type": "identify", "userId": people[0], "anonymousId": f"anon-{tag}",
                      "messageId": str(uuid.uuid4()), "traits": {"plan": "trial"}})
        batch.append({"type": "track", "userId": people[1]})  # no event name: refused
        answer = await http.post("/v1/batch", json={"batch": batch})
        assert answer.status_code == 200, answer.text
        broken = await http.post("/v1/track", content=b"{not json",
                                 headers={"content-type": "application/json"})
        assert broken.status_code == 400
    async with httpx.AsyncClient(base_url=polku.api.url, auth=("wk_not-a-key", "")) as http:
        assert (await http.post("/v1/track", json=track("Demo Requested", "x"))).status_code == 401

    def heard_of(path: str) -> set[str]:
        return {r.verified()["contact"] for r in receiver.requests(path)} & set(people)

    def webhooks_went_everywhere() -> bool:
        return (heard_of("/hooks/sales") == set(people)
                and heard_of("/hooks/flaky") == set(people)
                and len(heard_of("/hooks/at-risk")) == contacts // 2
                and len(receiver.requests("/hooks/broken")) >= 5  # enough to open the breaker
                and len(receiver.requests("/hooks/gone")) >= 1)

    await eventually(webhooks_went_everywhere, timeout_s=30, what="webhooks to every endpoint")


async def poison_the_touchpoints(kafka: KafkaSettings) -> None:
    """A record ingest would never write: the stager dead-letters it (polku_stager_dead_letters)."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(kafka.touchpoints_topic, b"{not json", key=b"obs-poison")
    finally:
        await producer.stop()


def targets(polku: Deployment) -> dict[str, list[str]]:
    return {JOBS[p.name]: [f"127.0.0.1:{p.port}"] for p in polku.processes}


def scraped(prometheus: str, services: int) -> bool:
    return len(query(prometheus, "up == 1")) == services


@dataclass
class Observed:
    polku: Deployment
    prometheus: str
    receiver: Receiver


@pytest.fixture(scope="module")
def module_database(run_id: str) -> Iterator[DatabaseSettings]:
    """A database of the module's own: the stager runs on the real clock (see own_database)."""
    with _fresh_database(f"polku_test_{run_id}_obs_{uuid.uuid4().hex[:6]}") as settings:
        yield settings


@pytest.fixture(scope="module")
async def observed(kafka_settings: KafkaSettings, module_database: DatabaseSettings,
                   tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Observed]:
    """Polku in the distributed mode under a little traffic, scraped by Prometheus each second."""
    tmp = tmp_path_factory.mktemp("observability")
    tag = f"obs-{uuid.uuid4().hex[:8]}"
    kafka = kafka_settings.model_copy(update={
        "touchpoints_topic": f"test-{tag}.touchpoints",
        "transitions_topic": f"test-{tag}.transitions",
        "dead_letter_topic": f"test-{tag}.dead-letters",
    })
    with Receiver() as receiver:
        failing_receiver(receiver)
        polku = deploy("distributed", journeys(tmp / "journeys", receiver), tmp, kafka,
                       module_database, **SETTINGS)
        polku.start()
        try:
            polku.write_key = await issue_write_key(polku)
            with running_prometheus(tmp / "prometheus", targets(polku), [RULES]) as url:
                # Scraped before the traffic, so its counters are seen rising (rates, quantiles).
                await eventually(lambda: scraped(url, len(polku.processes)), timeout_s=20,
                                 what="every service scraped")
                for _ in range(2):
                    await send_traffic(polku, receiver)
                    await poison_the_touchpoints(kafka)
                    await asyncio.sleep(2.5)  # a scrape or two of what the round did
                await eventually(lambda: bool(query(url, "polku_stager_dead_letters_total")),
                                 timeout_s=20, what="the poison records' dead letters scraped")
                yield Observed(polku, url, receiver)
        finally:
            polku.kill()


def check_exposition(text: bytes, where: str) -> None:
    """`promtool check metrics` is silent about a service's /metrics; no `_created` series."""
    checked = promtool("check", "metrics", stdin=text)
    assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip(), (
        f"{where}/metrics: {checked.stdout}{checked.stderr}")
    names = {line.split("{")[0].split(" ")[0] for line in text.decode().splitlines()
             if line and not line.startswith("#")}
    assert not {n for n in names if n.endswith("_created")}, where
    assert any(n.startswith("polku_") for n in names), where


def test_each_service_exposes_metrics_promtool_accepts_and_no_created_series(
    observed: Observed,
) -> None:
    for process in observed.polku.processes:
        check_exposition(httpx.get(f"{process.url}/metrics", timeout=10).content, process.url)


def test_prometheus_scrapes_every_service(observed: Observed) -> None:
    up = {r["metric"]["job"]: r["value"][1] for r in query(observed.prometheus, "up")}
    targets = httpx.get(f"{observed.prometheus}/api/v1/targets", timeout=10).json()
    assert up == {"polku-ingest": "1", "polku-stager": "1", "polku-actions": "1"}, [
        (t["labels"]["job"], t["health"], t["lastError"], t["lastScrapeDuration"])
        for t in targets["data"]["activeTargets"]]


def dashboard_queries(journey: str | None = None) -> list[tuple[str, str]]:
    """(panel title, expression) of every target of every panel, Grafana's variables replaced;
    with `journey`, only the targets filtered by the journey variable, set to that one."""
    values = VARIABLES | ({"$journey": journey} if journey else {})
    found = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            if journey and "$journey" not in expr:
                continue
            for variable, value in values.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"{panel['title']}: a variable the test does not know: {expr}"
            found.append((panel["title"], expr))
    return found


def has_numbers(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(series["value"][1])) for series in result)


def test_every_dashboard_panel_query_returns_data(observed: Observed) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 35
    empty = [(title, expr) for title, expr in queries
             if not has_numbers(query(observed.prometheus, expr))]
    assert not empty, "panels without data:\n" + "\n".join(f"{t}: {e}" for t, e in empty)


def test_the_journey_variable_lists_the_journeys_and_narrows_the_journey_panels_to_one(
    observed: Observed,
) -> None:
    [variable] = [v for v in json.loads(DASHBOARD.read_text())["templating"]["list"]
                  if v["name"] == "journey"]
    found = re.fullmatch(r"label_values\((\w+), journey\)", variable["definition"])
    assert found and variable["query"]["query"] == variable["definition"]
    # What Grafana asks Prometheus to fill the variable's list.
    answer = httpx.get(f"{observed.prometheus}/api/v1/label/journey/values",
                       params={"match[]": found[1]}, timeout=10).json()
    assert set(answer["data"]) == {"deals", "quiet"}
    queries = dashboard_queries(journey="quiet")
    assert len(queries) >= 4
    for title, expr in queries:
        result = query(observed.prometheus, expr)
        assert has_numbers(result), f"{title}: no data for one journey: {expr}"
        assert {r["metric"]["journey"] for r in result} == {"quiet"}, title


def test_the_breaker_the_lag_and_the_freshness_show_what_happened(observed: Observed) -> None:
    url = observed.prometheus
    # The failing endpoint's breaker is open (or probing); the good one's is closed.
    states = {r["metric"]["endpoint"]: float(r["value"][1])
              for r in query(url, "max by (endpoint) (polku_actions_breaker_state)")}
    broken, sales = (endpoint_id(observed.receiver.url(path))
                     for path in ("/hooks/broken", "/hooks/sales"))
    assert states[broken] >= 1 and states[sales] == 0, states
    # Caught up: no lag in records or seconds on any partition of either topic.
    for metric in ("polku_stager_consumer_lag_records", "polku_stager_consumer_lag_seconds",
                   "polku_actions_consumer_lag_records", "polku_actions_consumer_lag_seconds"):
        values = [float(r["value"][1]) for r in query(url, metric)]
        assert len(values) == 3 and set(values) == {0.0}, (metric, values)
    # Every transition was recorded within 30 s of its event time, and observed once.
    observed_once = ('sum(polku_stager_transitions_total) - '
                     'sum(polku_stager_event_to_transition_seconds_bucket{le="30.0"})')
    assert float(query(url, observed_once)[0]["value"][1]) == 0
    assert float(query(url, "polku_stager_event_to_transition_seconds_count")[0]["value"][1]) > 0
    # Every delivered webhook was delivered within 30 s of its transition being read.
    delivered = ('sum(polku_actions_attempts_total{outcome="delivered"}) - '
                 'sum(polku_actions_transition_to_delivery_seconds_bucket{le="30.0"})')
    assert float(query(url, delivered)[0]["value"][1]) == 0


def test_every_alert_rule_evaluates_on_live_metrics(observed: Observed) -> None:
    def evaluated() -> list[dict[str, Any]]:
        answer = httpx.get(f"{observed.prometheus}/api/v1/rules", timeout=10).json()
        return [rule for group in answer["data"]["groups"] for rule in group["rules"]]

    rules = evaluated()
    assert len(rules) == len(re.findall(r"^\s+- alert:", RULES.read_text(), re.M))
    assert all(rule["health"] == "ok" for rule in rules), [
        (rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"]
    # The dead-lettered poison, the failing webhooks and the endpoint disabled by its only 410
    # are seen (pending: `for:` runs). The 410's counter went from 0 to 1: one that first
    # appeared at 1 would show Prometheus no increase, and the alert would never fire.
    active = {rule["name"] for rule in rules if rule["state"] != "inactive"}
    assert {"PolkuRecordsDeadLettered", "PolkuWebhooksDeadLettered",
            "PolkuEndpointDisabled"} <= active


async def test_polku_dev_exposes_metrics_promtool_accepts_and_no_created_series(
    tmp_path: Path, receiver: Receiver,
) -> None:
    failing_receiver(receiver)
    polku = deploy("embedded", journeys(tmp_path / "journeys", receiver), tmp_path, None, None,
                   **SETTINGS)
    polku.start()
    try:
        polku.write_key = await issue_write_key(polku)
        await send_traffic(polku, receiver)
        async with httpx.AsyncClient(base_url=polku.api.url, timeout=10) as http:
            check_exposition((await http.get("/metrics")).content, polku.api.url)

            async def caught_up() -> bool:
                """The embedded log's one partition: both workers say they have read it all
                (the gauges are published once a second)."""
                text = (await http.get("/metrics")).text
                return all(f'{metric}{{partition="0"}} 0.0' in text for metric in (
                    "polku_stager_consumer_lag_seconds", "polku_stager_consumer_lag_records",
                    "polku_actions_consumer_lag_seconds", "polku_actions_consumer_lag_records"))

            await eventually(caught_up, timeout_s=10, what="no lag reported")
    finally:
        polku.kill()
