"""The stager service: keeps every contact's stage from the touchpoints stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from shared.db.engine import database_reachable, make_engine
from shared.kafka import broker_reachable
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
            app.state.engine = engine
            yield

    app = FastAPI(title="Polku stager", version="0.1.0", lifespan=lifespan)
    add_ops_routes(
        app,
        {
            "kafka": lambda: broker_reachable(kafka),
            "database": lambda: database_reachable(app.state.engine),
        },
    )
    return app
