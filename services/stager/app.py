"""The stager service: keeps every contact's stage from the touchpoints stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.stager.consumer import Stager
from services.stager.settings import StagerSettings
from shared.clock import Clock, SystemClock
from shared.db.engine import database_reachable, make_engine
from shared.journey.loader import load_journeys
from shared.kafka import broker_reachable, durable_producer, ensure_topics
from shared.ops import add_ops_routes
from shared.runtime import collect_less_often
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
            stager = Stager(kafka, settings, engine, producer, journeys, clock or SystemClock())
            app.state.stager = stager
            # A batch keeps tens of thousands of objects alive until it commits; with the
            # default thresholds rescanning them took a fifth of the CPU (docs/stager.md).
            collect_less_often(STAGER_GC_YOUNG, STAGER_GC_MIDDLE, freeze=True)
            task = asyncio.create_task(stager.run(), name="stager")

            async def finish() -> None:
                # Let the current batch commit, then leave the group.
                stager.stop()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, 30)

            stack.push_async_callback(finish)
            task.add_done_callback(_crash_loudly)
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


def _crash_loudly(task: asyncio.Task[None]) -> None:
    """A loop that died of a bug must not leave a healthy-looking process behind: exit."""
    if not task.cancelled() and task.exception() is not None:
        log.critical("stager loop died", exc_info=task.exception())
        os.kill(os.getpid(), signal.SIGTERM)
