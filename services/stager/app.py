"""The stager service: keeps every contact's stage from the touchpoints stream.

The distributed run mode of the stager: Kafka and PostgreSQL are chosen here and handed to
`start_stager` (services/stager/worker.py), which `polku dev` calls with the embedded log.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from services.stager.consumer import Stager
from services.stager.settings import StagerSettings
from services.stager.worker import start_stager
from shared.clock import Clock, SystemClock
from shared.db.engine import database_reachable, make_engine
from shared.journey import load_journeys
from shared.kafka import (
    KafkaWriter,
    broker_reachable,
    durable_producer,
    ensure_topics,
    group_consumer,
)
from shared.ops import add_ops_routes
from shared.settings import DatabaseSettings, KafkaSettings, ServiceSettings

log = logging.getLogger(__name__)


def kafka_consumer(kafka: KafkaSettings, settings: StagerSettings) -> AIOKafkaConsumer:
    """A member of the stager's consumer group. Its offsets are not the ones that count: the
    stager stores them with the state and seeks to them on assignment (see consumer.py)."""
    return group_consumer(
        kafka, settings.group_id,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
        fetch_min_bytes=settings.fetch_min_bytes,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
    )


def running_stager(app: FastAPI) -> Stager:
    """The stager `app` runs (set once its lifespan has started it)."""
    stager: Stager = app.state.stager
    return stager


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
    clock = clock or SystemClock()
    # Refuse to start on an invalid journey: JourneyError names every problem.
    journeys = load_journeys(journeys_dir or ServiceSettings().journeys_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            # Every batch is retried on failure, so no ping per checkout (see make_engine).
            engine = make_engine(database, pre_ping=False)
            stack.push_async_callback(engine.dispose)
            await ensure_topics(kafka, [kafka.touchpoints_topic, kafka.transitions_topic,
                                        kafka.dead_letter_topic])
            producer = durable_producer(kafka)
            await producer.start()
            stack.push_async_callback(producer.stop)
            app.state.stager = start_stager(
                stack, consumer=kafka_consumer(kafka, settings), writer=KafkaWriter(producer),
                engine=engine, settings=settings, topics=kafka.topics, journeys=journeys,
                clock=clock,
            )
            yield

    app = FastAPI(title="Polku stager", version="0.1.0", lifespan=lifespan)
    add_ops_routes(
        app,
        {
            "kafka": lambda: broker_reachable(kafka),
            "database": lambda: database_reachable(running_stager(app).engine),
        },
    )
    return app
