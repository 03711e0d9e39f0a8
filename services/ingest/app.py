"""The ingest service: Segment-compatible HTTP API in front of the touchpoints topic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from shared.db.engine import database_reachable, make_engine
from shared.kafka import broker_reachable, durable_producer, ensure_topics
from shared.ops import add_ops_routes
from shared.settings import DatabaseSettings, KafkaSettings


def create_app(
    kafka: KafkaSettings | None = None, database: DatabaseSettings | None = None
) -> FastAPI:
    kafka = kafka or KafkaSettings()
    database = database or DatabaseSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            engine = make_engine(database)
            stack.push_async_callback(engine.dispose)
            try:
                await ensure_topics(kafka, [kafka.touchpoints_topic])
            except Exception:  # the broker may come later; produce will wait or 503
                pass
            producer = durable_producer(kafka)
            await producer.start()
            # Closed first on the way out: stop() flushes what is in flight.
            stack.push_async_callback(producer.stop)
            app.state.engine = engine
            app.state.producer = producer
            app.state.kafka = kafka
            yield

    app = FastAPI(title="Polku ingest", version="0.1.0", lifespan=lifespan)
    add_ops_routes(
        app,
        {
            "kafka": lambda: broker_reachable(kafka),
            "database": lambda: database_reachable(app.state.engine),
        },
    )
    return app
