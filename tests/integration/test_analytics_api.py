"""The analytics API over HTTP, in both run modes: ingest's app on PostgreSQL and `polku dev`'s
on SQLite. Histories are written by the real stager store (tests/analytics_histories.py); the
figures themselves are checked by hand in test_analytics_figures.py, so here: the answers'
shapes, the refusals (422 naming the parameter, 404 the journey, 401 without the read token),
paging through contacts and exporting transitions."""

from __future__ import annotations

import csv
import gc
import io
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from services.dev.app import create_app as create_dev_app
from services.dev.settings import DevSettings
from services.ingest.app import create_app as create_ingest_app
from services.ingest.read_api import read_api_of
from services.ingest.settings import IngestSettings
from shared.db.tables import transitions
from shared.settings import DatabaseSettings, KafkaSettings
from tests.analytics_histories import CRAFTED, JOURNEYS_DIR, apply, at, event, interleaved, path

TOKEN = "read-token-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "/v1/analytics/journeys/funnel"
PERIOD = {"from": at(-1).isoformat(), "to": at(14 * 24).isoformat()}


class Api:
    """A client of one app, and the engine its routes read."""

    def __init__(self, http: httpx.AsyncClient, engine: AsyncEngine) -> None:
        self.http = http
        self.engine = engine

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers=AUTH)


@pytest.fixture
def collector() -> Iterator[None]:
    """The embedded stager tunes the collector for the whole process: undo it after the test."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.fixture(params=["postgresql", "sqlite"])
def app(request: pytest.FixtureRequest, tmp_path: Path, collector: None) -> FastAPI:
    """Ingest's app on a fresh PostgreSQL database, or `polku dev`'s on a SQLite file."""
    settings = IngestSettings(read_token=TOKEN)
    if request.param == "postgresql":
        database: DatabaseSettings = request.getfixturevalue("own_database")
        kafka: KafkaSettings = request.getfixturevalue("topic_names")
        return create_ingest_app(kafka, database, settings, JOURNEYS_DIR)
    return create_dev_app(DevSettings(data_dir=tmp_path / "dev"),
                          demo_secret="whsec_" + "A" * 32, environ={},
                          journeys_dir=JOURNEYS_DIR, ingest=settings)


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[Api]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://polku") as http,
    ):
        yield Api(http, read_api_of(app).engine)


async def test_the_funnel_answers_with_labels_figures_and_splits(api: Api) -> None:
    await apply(api.engine, interleaved(CRAFTED))

    answer = await api.get(f"{BASE}/funnel", **PERIOD, mode="any_order", split="cohort_week")

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["journey"], body["mode"], body["split"]) == ("funnel", "any_order",
                                                              "cohort_week")
    assert body["period"] == {"from": "2026-11-02T07:00:00Z", "to": "2026-11-16T08:00:00Z"}
    first = body["stages"][0]
    assert first == {
        "stage": "a", "labels": {"fi": "A-vaihe", "en": "Stage A"}, "reached": 6,
        "conversion_to_next": pytest.approx(4 / 6), "conversion_from_first": 1.0, "dropped": 2,
        "time_in_stage": {"median_s": 3600.0, "p90_s": 5400.0, "visits": 6, "sample": 1.0},
    }
    assert [s["reached"] for s in body["stages"]] == [6, 4, 5, 3]
    assert body["stages"][3]["conversion_to_next"] is None
    assert [(s["key"], [x["reached"] for x in s["stages"]]) for s in body["splits"]] == [
        ("2026-W45", [5, 3, 5, 3]), ("2026-W46", [1, 1, 0, 0])]


async def test_flows_answer_nodes_and_links_marking_the_backward_ones(api: Api) -> None:
    await apply(api.engine, interleaved(CRAFTED))

    answer = await api.get(f"{BASE}/flows", **PERIOD)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [(n["stage"], n["labels"]["en"], n["still_in"]) for n in body["nodes"]] == [
        ("a", "Stage A", 1), ("b", "Stage B", 1), ("c", "Stage C", 2), ("d", "Stage D", 3)]
    assert [(k["from"], k["to"], k["count"], k["backward"]) for k in body["links"]] == [
        (None, "a", 6, False), (None, "c", 1, False), ("a", "b", 4, False),
        ("a", "c", 2, False), ("b", "a", 1, True), ("b", "c", 3, False),
        ("c", "b", 1, True), ("c", "d", 3, False)]


async def test_population_answers_a_series_per_stage(api: Api) -> None:
    await apply(api.engine, interleaved(CRAFTED))

    answer = await api.get(f"{BASE}/population", interval="week",
                           **{"from": at(-24).isoformat(), "to": at(13 * 24).isoformat()})

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["interval"] == "week"
    assert [(s["stage"], s["labels"]["en"], s["points"]) for s in body["series"]] == [
        ("a", "Stage A", [["2026-11-08T08:00:00Z", 1], ["2026-11-15T08:00:00Z", 1]]),
        ("b", "Stage B", [["2026-11-08T08:00:00Z", 0], ["2026-11-15T08:00:00Z", 1]]),
        ("c", "Stage C", [["2026-11-08T08:00:00Z", 2], ["2026-11-15T08:00:00Z", 2]]),
        ("d", "Stage D", [["2026-11-08T08:00:00Z", 3], ["2026-11-15T08:00:00Z", 3]]),
    ]


@pytest.mark.parametrize(("endpoint", "params", "field"), [
    ("funnel", {"from": "2026-11-01T00:00:00"}, "from"),
    ("funnel", {"to": "yesterday"}, "to"),
    ("funnel", {"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "to"),
    ("funnel", {"mode": "sideways"}, "mode"),
    ("funnel", {"split": "by_moon"}, "split"),
    ("flows", {"from": "not a time"}, "from"),
    ("population", {"interval": "hour"}, "interval"),
    ("population", {"interval": "day", "from": "2020-01-01T00:00:00Z"}, "interval"),
    ("contacts", {"limit": "0"}, "limit"),
    ("contacts", {"limit": "501"}, "limit"),
    ("contacts", {"limit": "many"}, "limit"),
    ("contacts", {"stage": "z"}, "stage"),
    ("contacts", {"entered_since": "2026-11-01"}, "entered_since"),
    ("contacts", {"trait": "no-colon"}, "trait"),
    ("contacts", {"cursor": "!!"}, "cursor"),
    ("transitions", {"format": "xml"}, "format"),
])
async def test_a_bad_parameter_is_a_422_naming_it(api: Api, endpoint: str,
                                                  params: dict[str, str], field: str) -> None:
    answer = await api.get(f"{BASE}/{endpoint}", **params)

    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(f"{field}: ")


@pytest.mark.parametrize("endpoint", ["funnel", "flows", "population", "contacts",
                                      "transitions"])
async def test_an_unknown_journey_is_a_404_and_no_token_a_401(api: Api, endpoint: str) -> None:
    missing = await api.get(f"/v1/analytics/journeys/nope/{endpoint}")
    anonymous = await api.http.get(f"{BASE}/{endpoint}")
    wrong = await api.http.get(f"{BASE}/{endpoint}", headers={"Authorization": "Bearer no"})
    allowed = await api.get(f"{BASE}/{endpoint}")

    assert missing.status_code == 404
    assert missing.json()["detail"].startswith("journey_id: ")
    assert (anonymous.status_code, wrong.status_code, allowed.status_code) == (401, 401, 200)


async def test_cursor_paging_lists_every_contact_exactly_once(api: Api) -> None:
    contacts = {f"p-{i:03d}": path(f"p-{i:03d}", (0, "a"), *([(1, "b")] if i % 3 else []))
                for i in range(61)}
    await apply(api.engine, interleaved(contacts))

    async def all_pages(**params: Any) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await api.get(f"{BASE}/contacts", limit="7",
                                 **params, **({"cursor": cursor} if cursor else {}))
            assert page.status_code == 200, page.text
            listed.extend(page.json()["contacts"])
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return listed

    everyone = await all_pages()
    in_a = await all_pages(stage="a")

    assert [c["contact"] for c in everyone] == sorted(contacts)
    assert [c["contact"] for c in in_a] == [f"p-{i:03d}" for i in range(0, 61, 3)]
    assert everyone[1] == {"contact": "p-001", "stage": "b", "entered_at": "2026-11-02T09:00:00Z",
                           "first_touch": {"channel": "direct", "at": "2026-11-02T08:00:00Z"},
                           "traits": {}}


async def test_contacts_are_found_by_trait_and_by_when_they_entered_their_stage(
    api: Api,
) -> None:
    # An identify enters the journey (at its first stage) with the contact's traits.
    await apply(api.engine, [
        event("t-1", 0, "", type="identify", traits={"plan": "pro", "seats": 5, "trial": True}),
        event("t-2", 1, "", type="identify", traits={"plan": "pro", "seats": 50, "trial": False}),
        event("t-3", 2, "", type="identify", traits={"plan": "free"}),
    ])

    async def listed(**params: Any) -> list[str]:
        answer = await api.get(f"{BASE}/contacts", **params)
        assert answer.status_code == 200, answer.text
        return [c["contact"] for c in answer.json()["contacts"]]

    assert await listed(trait="plan:pro") == ["t-1", "t-2"]
    assert await listed(trait=["plan:pro", "seats:50"]) == ["t-2"]
    assert await listed(trait="trial:true") == ["t-1"]
    assert await listed(trait="plan:enterprise") == []
    assert await listed(entered_since=at(1).isoformat()) == ["t-2", "t-3"]


async def export_rows(engine: AsyncEngine, start: Any, end: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(transitions).where(transitions.c.journey_id == "funnel",
                                         transitions.c.at >= start, transitions.c.at < end)
            .order_by(transitions.c.at, transitions.c.transition_id))
        return [{"transition_id": r.transition_id, "contact": r.contact, "from": r.from_stage,
                 "to": r.to_stage, "at": r.at.isoformat(), "cause": r.cause, "rule": r.rule_id,
                 "reason": r.reason} for r in rows]


async def test_the_transitions_export_in_ndjson_and_csv_is_the_transitions_table(
    api: Api,
) -> None:
    await apply(api.engine, interleaved(CRAFTED))
    window = {"from": at(1).isoformat(), "to": at(9).isoformat()}  # 9 h: alice's d excluded
    expected = await export_rows(api.engine, at(1), at(9))

    ndjson = await api.get(f"{BASE}/transitions", **window)
    table = await api.get(f"{BASE}/transitions", **window, format="csv")

    assert ndjson.status_code == 200 and table.status_code == 200
    assert ndjson.headers["content-type"] == "application/x-ndjson"
    assert table.headers["content-type"].startswith("text/csv")
    from_ndjson = [json.loads(line) for line in ndjson.text.splitlines()]
    from_csv = [{k: (v or None) for k, v in row.items()}
                for row in csv.DictReader(io.StringIO(table.text))]
    assert len(expected) == 11
    assert from_ndjson == expected
    assert from_csv == expected
    assert "alice" in {r["contact"] for r in expected}
    assert all(at(1).isoformat() <= r["at"] < at(9).isoformat() for r in expected)
