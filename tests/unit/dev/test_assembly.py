"""`polku dev` assembles the three services from values: the demo secret is handed to the signer
and the sink, never written into the environment, and each API keeps its own token."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from services.actions.settings import ActionsSettings
from services.dev.app import DEMO_SECRET_ENV, create_app, demo_secret
from services.dev.settings import DevSettings
from services.ingest.settings import IngestSettings
from tests.stager_harness import JOURNEYS

SECRET = "whsec_" + "A" * 32


def test_the_demo_secret_is_the_variable_if_set_else_kept_in_the_data_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(DEMO_SECRET_ENV, SECRET)
    assert demo_secret(DevSettings(data_dir=tmp_path)) == SECRET
    monkeypatch.delenv(DEMO_SECRET_ENV)
    generated = demo_secret(DevSettings(data_dir=tmp_path))
    assert generated.startswith("whsec_") and generated != SECRET
    assert demo_secret(DevSettings(data_dir=tmp_path)) == generated  # kept across restarts
    assert DEMO_SECRET_ENV not in os.environ


@pytest.fixture
def collector() -> Iterator[None]:
    """The embedded stager tunes the collector for the whole process: undo it after the test."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.fixture
async def embedded(tmp_path: Path, collector: None) -> AsyncIterator[FastAPI]:
    app = create_app(
        DevSettings(data_dir=tmp_path / "dev"), demo_secret=SECRET, environ={},
        journeys_dir=JOURNEYS,
        ingest=IngestSettings(read_token="read-token-0123456789",
                              admin_token="privacy-token-0123456789"),
        actions=ActionsSettings(admin_token="admin-token-0123456789"),
    )
    async with app.router.lifespan_context(app):
        yield app


async def test_each_api_of_the_embedded_process_demands_its_own_token(
    embedded: FastAPI,
) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=embedded),
                                 base_url="http://dev") as http:
        def bearer(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        read, admin = bearer("read-token-0123456789"), bearer("admin-token-0123456789")
        assert (await http.get("/v1/journeys", headers=read)).status_code == 200
        assert (await http.get("/v1/journeys", headers=admin)).status_code == 401
        assert (await http.get("/v1/deliveries", headers=admin)).status_code == 200
        assert (await http.get("/v1/deliveries", headers=read)).status_code == 401
        privacy = bearer("privacy-token-0123456789")
        for other in (read, admin, {}):
            assert (await http.get("/v1/erasures/er_x", headers=other)).status_code == 401
            assert (await http.delete("/v1/contacts/c-1", headers=other)).status_code == 401
        assert (await http.get("/v1/erasures/er_x", headers=privacy)).status_code == 404
        assert (await http.get("/v1/deliveries", headers=privacy)).status_code == 401
        assert (await http.get("/readyz")).status_code == 200
    assert DEMO_SECRET_ENV not in os.environ
