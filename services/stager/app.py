"""The stager service: keeps every contact's stage from the touchpoints stream."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.stager.consumer import Stager
from services.stager.settings import StagerSettings
from shared.clock import Clock, SystemClock
from shared.db.engine import database_reachable, make_engine
from shared.journey.loader import load_journeys
from shared.kafka import KafkaWriter, broker_reachable, durable_producer, ensure_topics
from shared.ops import add_ops_routes
from shared.runtime import collect_less_often, start_background
from shared.settings import DatabaseSettings, KafkaSettings, ServiceSettings

log = logging.getLogger(__name__)


# Collection thresholds for the stager's young and middle generations (see shared/runtime.py).
STAGER_GC_YOUNG, STAGER_GC_MIDDLE = 50_000, 20

def create_app(
    kafka: KafkaSettings | None = None,
    database: DatabaseSettings | None = None,
    settings: StagerSettings | None = None,
    journeys_dir: Path | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    kafka = kafka or KafkaSettings()
    database = database or DatabaseSettings()
    settings = settings or StagerSettings()
    # Refuse to start on an invalid journey: JourneyError names every problem.
    journeys = load_journeys(journeys_dir or ServiceSettings().journeys_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            # Every batch is retried on failure, so no ping per checkout (see make_engine).
            engine = make_engine(database, pre_ping=False)
            stack.push_async_callback(engine.dispose)
            app.state.engine = engine
            await ensure_topics(kafka, [kafka.touchpoints_topic, kafka.transitions_topic,
                                        kafka.dead_letter_topic])
            producer = durable_producer(kafka)
            await producer.start()
            stack.push_async_callback(producer.stop)
            stager = Stager(kafka, settings, engine, KafkaWriter(producer), journeys,
                            clock or SystemClock())
            app.state.stager = stager
            # A batch keeps tens of thousands of objects alive until it commits; with the
            # default thresholds rescanning them took a fifth of the CPU (docs/stager.md).
            collect_less_often(STAGER_GC_YOUNG, STAGER_GC_MIDDLE, freeze=True)
            # On the way out the current batch commits, then the consumer leaves the group.
            start_background(stack, "stager", stager.run(), stager.stop, 30)
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
