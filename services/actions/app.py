"""The actions service: delivers signed webhooks for stage transitions.

The distributed run mode of the actions worker: Kafka and PostgreSQL are chosen here and handed
to `start_actions` (services/actions/worker.py), which `polku dev` calls with the embedded log.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from services.actions.egress import EgressPolicy
from services.actions.routes import DeliveryApi, add_delivery_routes, delivery_api_of, provide
from services.actions.settings import ActionsSettings
from services.actions.signing import SigningSecrets
from services.actions.worker import start_actions
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

# The worker's connections: its consumer, claim loop, result writer and housekeeping each use
# one at a time.
WORKER_POOL_SIZE = 5


def kafka_consumer(kafka: KafkaSettings, settings: ActionsSettings) -> AIOKafkaConsumer:
    """A member of the actions worker's consumer group (offsets committed after each batch's
    deliveries are in the database; see consumer.py)."""
    return group_consumer(kafka, settings.group_id,
                          session_timeout_ms=settings.session_timeout_ms,
                          heartbeat_interval_ms=settings.heartbeat_interval_ms)


def create_app(
    kafka: KafkaSettings | None = None,
    database: DatabaseSettings | None = None,
    settings: ActionsSettings | None = None,
    journeys_dir: Path | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    kafka = kafka or KafkaSettings()
    database = database or DatabaseSettings()
    settings = settings or ActionsSettings()
    clock = clock or SystemClock()
    # Refuse to start on an invalid journey: JourneyError names every problem.
    journeys = load_journeys(journeys_dir or ServiceSettings().journeys_dir)
    # Built now, so a malformed POLKU_ACTIONS_EGRESS_ALLOW refuses the start at once.
    egress = EgressPolicy(settings.egress_allow)
    # Journeys name the environment variables their secrets are in; they are read at every
    # attempt, so a secret rotated in the environment is used without a restart.
    secrets = SigningSecrets(os.environ)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Closed in reverse on shutdown: the worker stops (services/actions/worker.py), then
        # the producer and the database close.
        async with AsyncExitStack() as stack:
            engine = make_engine(database)
            stack.push_async_callback(engine.dispose)
            # The worker retries whatever meets a connection the server closed (an outage, to
            # it), so its connections skip the ping each checkout costs (a round trip per
            # claim, batch and result write); the delivery API's keep it.
            worker_engine = make_engine(database, pool_size=WORKER_POOL_SIZE, pre_ping=False)
            stack.push_async_callback(worker_engine.dispose)
            await ensure_topics(kafka, [kafka.transitions_topic, kafka.dead_letter_topic])
            producer = durable_producer(kafka)
            await producer.start()
            stack.push_async_callback(producer.stop)
            dispatcher = start_actions(
                stack, consumer=kafka_consumer(kafka, settings), writer=KafkaWriter(producer),
                engine=worker_engine, settings=settings, topics=kafka.topics, journeys=journeys,
                clock=clock, egress=egress, secrets=secrets,
            )
            provide(app, DeliveryApi(engine, settings.delivery_api_token, clock, dispatcher))
            yield

    app = FastAPI(title="Polku actions", version="0.1.0", lifespan=lifespan)
    add_delivery_routes(app)
    add_ops_routes(
        app,
        {
            "kafka": lambda: broker_reachable(kafka),
            "database": lambda: database_reachable(delivery_api_of(app).engine),
        },
    )
    return app
