"""The tracking routes answer the same whether DirectRoutes serves them (every request on the
root path) or FastAPI's router does (behind a root_path); what they do not serve reaches FastAPI.

The app is the real one (add_api_routes) with a log and a key store in memory; the API's
behaviour against Kafka and PostgreSQL is tested in tests/integration/test_ingest_api.py.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from services.ingest import routes
from services.ingest.app import add_api_routes
from services.ingest.intake import Intake
from services.ingest.settings import IngestSettings
from services.ingest.sources import Source
from services.ingest.touchpoint import Record
from shared.ops import add_ops_routes

KEY = "wk_test"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}
TRACK = {"userId": "u-1", "event": "Demo Requested", "messageId": "m-1"}


class OneSource:
    async def find(self, write_key: str) -> Source | None:
        return Source("source-1", "web") if write_key == KEY else None


class Log:
    dependency = "log"

    def __init__(self) -> None:
        self.records: list[Record] = []

    async def publish(self, records: Sequence[Record]) -> None:
        self.records.extend(records)


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture(params=["", "/ingest"], ids=["root", "behind a root_path"])
async def client(log: Log, request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app served at / (DirectRoutes answers) or behind a root_path, where
    DirectRoutes leaves the path to FastAPI's router."""
    app = FastAPI()
    add_api_routes(app)
    add_ops_routes(app, {})
    routes.provide(app, Intake(IngestSettings(), OneSource(), log))
    root_path = request.param
    transport = httpx.ASGITransport(app=app, root_path=root_path)
    async with httpx.AsyncClient(transport=transport,
                                 base_url="http://ingest" + root_path) as client:
        yield client


async def post(client: httpx.AsyncClient, path: str, body: Any,
               headers: dict[str, str] = AUTH) -> httpx.Response:
    return await client.post(path.lstrip("/"), json=body, headers=headers)


def requests_counted(route: str, status: str) -> float:
    return REGISTRY.get_sample_value("polku_ingest_requests_total",
                                     {"route": route, "status": status}) or 0.0


async def test_a_call_is_accepted_and_counted_by_its_route(
    client: httpx.AsyncClient, log: Log
) -> None:
    before = requests_counted("/v1/track", "200")
    response = await post(client, "/v1/track", TRACK)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"success": True, "accepted": 1, "rejected": []}
    assert [r.type for r in log.records] == ["track"]
    assert requests_counted("/v1/track", "200") == before + 1


async def test_refusals_have_the_documented_shape(client: httpx.AsyncClient, log: Log) -> None:
    response = await post(client, "/v1/batch",
                          {"batch": [{**TRACK, "type": "track"}, {"userId": "u-2"}]})
    assert response.status_code == 200
    assert response.json()["accepted"] == 1
    assert [(r["index"], r["field"]) for r in response.json()["rejected"]] == [(1, "type")]
    refused = await post(client, "/v1/track", {"event": "E"})
    assert refused.status_code == 400
    assert refused.json() == {"success": False, "code": "missing_field", "field": "userId",
                              "message": refused.json()["message"]}
    other_key = {"Authorization": "Basic " + base64.b64encode(b"wk_other:").decode()}
    unknown = await post(client, "/v1/track", TRACK, other_key)
    assert unknown.status_code == 401
    assert unknown.headers["WWW-Authenticate"].startswith("Basic")
    assert len(log.records) == 1


async def test_what_the_tracking_routes_do_not_take_is_answered_by_fastapi(
    client: httpx.AsyncClient,
) -> None:
    wrong_method = await client.get("v1/track")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "method_not_allowed"
    assert (await post(client, "/v1/trak", TRACK)).json()["code"] == "not_found"
