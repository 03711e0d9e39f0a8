"""In-memory stand-ins for ingest's key store and Kafka, for tests that need neither server."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI

from services.ingest.app import create_app
from services.ingest.intake import Intake
from services.ingest.publish import NotAcknowledged
from services.ingest.settings import IngestSettings
from services.ingest.sources import Source, SourcesUnavailable
from services.ingest.touchpoint import Record

WRITE_KEY = "wk_test-key"
LIMITED_KEY = "wk_limited-key"


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


class FakeSources:
    def __init__(self) -> None:
        self.sources = {
            WRITE_KEY: Source("source-1", "web"),
            LIMITED_KEY: Source("source-2", "limited", rate_limit_per_s=10),
        }
        self.down = False

    async def find(self, write_key: str) -> Source | None:
        if self.down:
            raise SourcesUnavailable("connection refused")
        return self.sources.get(write_key)


class FakeKafka:
    """Keeps what it is given; `down` makes every publish fail as an unreachable broker does."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.down = False

    async def publish(self, records: Sequence[Record]) -> None:
        if self.down:
            raise NotAcknowledged("Kafka did not acknowledge the events within 5 s")
        self.records.extend(records)

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in self.records]


def ingest_app(kafka: FakeKafka | None = None, settings: IngestSettings | None = None,
               sources: FakeSources | None = None) -> FastAPI:
    """The real app with its lifespan resources replaced by fakes (no lifespan runs)."""
    app = create_app()
    app.state.intake = Intake(settings or IngestSettings(), sources or FakeSources(),
                              kafka or FakeKafka())
    return app
