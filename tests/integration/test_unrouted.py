"""A path no service serves, or a method its route does not take, is answered in the documented
error shape (`success`, `code`, `field`, `message`), not FastAPI's `{"detail": ...}`."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from services.actions.app import create_app as create_actions
from shared.settings import DatabaseSettings, KafkaSettings
from tests.ingest_app import ingest_client

JOURNEYS = Path(__file__).parents[1] / "journeys"


def assert_problem(response: httpx.Response, status: int, code: str, field: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body == {"success": False, "code": code, "field": field,
                    "message": body["message"]}
    assert body["message"].startswith(f"{field}: ")


async def test_ingest_answers_404_and_405_in_the_documented_shape(
    topic_names: KafkaSettings, database_settings: DatabaseSettings
) -> None:
    async with ingest_client(topic_names, database_settings) as client:
        assert_problem(await client.post("/v1/trak", json={}), 404, "not_found", "path")
        wrong_method = await client.get("/v1/track")
        assert_problem(wrong_method, 405, "method_not_allowed", "method")
        assert wrong_method.headers["Allow"] == "POST"
        assert "POST" in wrong_method.json()["message"]


@pytest.fixture
def actions_app(topic_names: KafkaSettings, database_settings: DatabaseSettings) -> FastAPI:
    # Routing needs no lifespan: the answers come before any route would reach a dependency.
    return create_actions(topic_names, database_settings, journeys_dir=JOURNEYS)


async def test_the_actions_service_answers_404_and_405_in_the_same_shape(
    actions_app: FastAPI,
) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=actions_app),
                                 base_url="http://actions") as client:
        assert_problem(await client.get("/no/such/thing"), 404, "not_found", "path")
        assert_problem(await client.delete("/readyz"), 405, "method_not_allowed", "method")
