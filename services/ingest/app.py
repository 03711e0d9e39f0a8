"""The ingest service: Segment-compatible HTTP API in front of the touchpoints topic.

The distributed run mode chooses Kafka and PostgreSQL here; `attach` gives the API what it
serves from, and `polku dev` (services/dev/app.py) calls the same `attach` with the embedded log
and SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.telemetry import TelemetryConfig
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest import analytics_api, metrics, privacy_api, read_api, routes
from services.ingest.console import add_console_routes
from services.ingest.direct import DirectRoutes
from services.ingest.errors import IngestError
from services.ingest.intake import Intake
from services.ingest.privacy_api import PrivacyApi
from services.ingest.publish import KafkaPublisher, Publisher
from services.ingest.read_api import ReadApi, read_api_of
from services.ingest.request_ids import RequestIds
from services.ingest.schemas import component_schemas
from services.ingest.settings import IngestSettings
from services.ingest.sources import SourceDirectory
from shared.clock import SystemClock
from shared.db.engine import database_reachable, make_engine
from shared.journey import Journey, JourneyError, load_journeys
from shared.kafka import (
    TopicDurability,
    TopicsNotCreated,
    broker_reachable,
    durable_producer,
    ensure_topics,
)
from shared.ops import add_ops_routes
from shared.privacy import ErasureStores, SuppressionList, kafka_expiry
from shared.runtime import collect_less_often, start_background
from shared.settings import DatabaseSettings, KafkaSettings, ServiceSettings

DESCRIPTION = """\
Speaks the [Segment HTTP Tracking API](https://segment.com/docs/connections/sources/catalog/\
libraries/server/http-api/): point a Segment or RudderStack SDK here with a Polku write key.
A 2xx means every accepted event is acknowledged by Kafka. See docs/ingest.md.
"""

log = logging.getLogger("polku.ingest")

NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(
    kafka: KafkaSettings | None = None,
    database: DatabaseSettings | None = None,
    settings: IngestSettings | None = None,
    journeys_dir: Path | None = None,
) -> FastAPI:
    kafka = kafka or KafkaSettings()
    database = database or DatabaseSettings()
    settings = settings or IngestSettings()
    journeys = read_journeys(journeys_dir or ServiceSettings().journeys_dir)
    # Built here rather than in the lifespan, so /readyz can ask it whether it can produce.
    publisher = KafkaPublisher(kafka.touchpoints_topic, settings.produce_timeout_s)

    async def producer_ready() -> bool:
        return publisher.ready()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            engine = make_engine(database)
            stack.push_async_callback(engine.dispose)
            connecting = asyncio.create_task(connect(publisher, kafka))
            # Closed first on the way out: stop() flushes what is in flight.
            stack.push_async_callback(disconnect, publisher, connecting)
            # Serve once connected, or after the produce deadline at the latest (answering 503
            # until the broker is back): an outage at start-up must not keep /healthz away.
            await asyncio.wait({connecting}, timeout=settings.produce_timeout_s)
            attach(app, stack, engine, publisher, settings, journeys,
                   ErasureStores(kafka.touchpoints_topic,
                                 kafka_expiry(kafka.retention, kafka.segment,
                                              timedelta(seconds=settings.suppression_refresh_s))))
            # Every event allocates a few dicts and a future: 20,000 cut ingest's CPU per event
            # by ~20% (shared/runtime.py says why).
            collect_less_often(settings.gc_young_threshold)
            yield

    # FastAPI's native OpenTelemetry is off: Polku's metrics are Prometheus's, and asking
    # whether a tracer is configured cost every request a few µs.
    app = FastAPI(title="Polku ingest", version="0.1.0", description=DESCRIPTION,
                  lifespan=lifespan, telemetry=NO_TELEMETRY)
    add_api_routes(app)
    add_ops_routes(
        app,
        {
            "kafka": lambda: broker_reachable(kafka),
            "producer": producer_ready,
            "topics": TopicDurability(kafka, [kafka.touchpoints_topic]),
            "database": lambda: database_reachable(read_api_of(app).engine),
        },
    )
    return app


def add_api_routes(app: FastAPI) -> None:
    """The Segment-compatible API, the read and analytics APIs and the privacy API, with their
    error answers and metrics, and the console over the read and analytics APIs at `/`. Both
    modes mount these: `attach` gives them what they serve from."""
    app.include_router(routes.router)
    app.include_router(read_api.router)
    app.include_router(analytics_api.router)
    app.include_router(privacy_api.router)
    add_console_routes(app)
    app.add_exception_handler(IngestError, routes.refused)  # type: ignore[arg-type]
    # Added first, so it runs inside the request metrics: they count its answers too.
    app.add_middleware(DirectRoutes)
    app.add_middleware(metrics.RequestMetrics)
    app.add_middleware(RequestIds)  # outermost: the id is set before anything can log
    install_openapi(app)


def attach(app: FastAPI, stack: AsyncExitStack, engine: AsyncEngine, publisher: Publisher,
           settings: IngestSettings, journeys: Sequence[Journey], stores: ErasureStores
           ) -> None:
    """Point the API routes at a database and a log (Kafka or the embedded one): the one
    place both run modes assemble ingest, from the parts they chose. The suppression list's
    reloading runs until `stack` closes."""
    suppression = SuppressionList(engine, settings.suppression_refresh_s)
    stopping = asyncio.Event()
    start_background(stack, "suppression-list", suppression.run(stopping), stopping.set, 10)
    routes.provide(app, Intake(
        settings,
        SourceDirectory(engine, settings.key_cache_ttl_s, settings.key_lookup_timeout_s,
                        lookups_per_s=settings.key_lookups_per_s),
        publisher,
        suppression=suppression,
    ))
    read_api.provide(app, ReadApi(engine, {j.id: j for j in journeys}, settings.read_api_token))
    privacy_api.provide(app, PrivacyApi(engine, settings.admin_api_token, stores,
                                        SystemClock()))


async def connect(publisher: KafkaPublisher, kafka: KafkaSettings, retry_s: float = 1.0) -> None:
    """Create the topic (with the configured partitions and replication), then start the
    producer; the broker may be down when ingest starts, so both are retried until it answers.
    A topic the broker refuses to create is said once (and /readyz says not ready), then
    retried quietly: the producer must not start, or the broker would auto-create the topic
    with its own defaults."""
    refused = ""
    while True:
        try:
            await ensure_topics(kafka, [kafka.touchpoints_topic])
            break
        except TopicsNotCreated as exc:
            if str(exc) != refused:
                log.error("Kafka refused to create the touchpoints topic (%s); check "
                          "POLKU_KAFKA_REPLICATION_FACTOR and POLKU_KAFKA_MIN_INSYNC_REPLICAS "
                          "against the cluster; retrying", exc)
                refused = str(exc)
            await asyncio.sleep(max(retry_s, 10.0))
        except Exception as exc:  # any client error: the broker is not there yet
            log.warning("cannot create Kafka topics yet (%s); retrying", type(exc).__name__)
            await asyncio.sleep(retry_s)
    await publisher.connect(lambda: durable_producer(kafka), retry_s)


async def disconnect(publisher: KafkaPublisher, connecting: asyncio.Task[None]) -> None:
    connecting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await connecting
    await publisher.stop()


def read_journeys(directory: Path) -> list[Journey]:
    """The journeys the read API describes. Broken journeys must not stop event intake.

    The stager refuses to start on an invalid journey; ingest keeps accepting events (they wait
    in Kafka until the journeys are fixed) and only the read API goes without labels.
    """
    try:
        return load_journeys(directory)
    except JourneyError as exc:
        log.error("journeys in %s are invalid; /v1/journeys lists none: %s", directory, exc)
        return []


def install_openapi(app: FastAPI) -> None:
    """Add the request-body schemas (documented, not validated by FastAPI) and the auth scheme."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {}).update(component_schemas())
            components["securitySchemes"] = {
                "writeKey": {"type": "http", "scheme": "basic",
                             "description": "The write key as user name, empty password "
                             "(or writeKey in the body)"}
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
