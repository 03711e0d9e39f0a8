"""The actions service: delivers signed webhooks for stage transitions."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.actions.consumer import TransitionConsumer
from services.actions.dispatcher import Dispatcher
from services.actions.egress import EgressPolicy, guarded_transport
from services.actions.routes import add_delivery_routes
from services.actions.settings import ActionsSettings
from shared.clock import Clock, SystemClock
from shared.db.engine import database_reachable, make_engine
from shared.journey import load_journeys
from shared.kafka import KafkaWriter, broker_reachable, durable_producer, ensure_topics
from shared.ops import add_ops_routes
from shared.runtime import start_background
from shared.settings import DatabaseSettings, KafkaSettings, ServiceSettings

log = logging.getLogger(__name__)


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
    journeys = {j.id: j for j in load_journeys(journeys_dir or ServiceSettings().journeys_dir)}
    policy = EgressPolicy(settings.egress_allow)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Closed in reverse on shutdown: the consumer stops taking transitions, the dispatcher
        # finishes running attempts (or leaves them to their leases), then the clients close.
        async with AsyncExitStack() as stack:
            engine = make_engine(database)
            stack.push_async_callback(engine.dispose)
            app.state.engine = engine
            await ensure_topics(kafka, [kafka.transitions_topic, kafka.dead_letter_topic])
            producer = durable_producer(kafka)
            await producer.start()
            stack.push_async_callback(producer.stop)
            # No client on top: no proxy from the environment (it would bypass the egress
            # check), no redirects, no cookies; see attempt.py.
            transport = guarded_transport(policy)
            stack.push_async_callback(transport.aclose)

            dispatcher = Dispatcher(engine, settings, transport, clock)
            app.state.dispatcher = dispatcher
            start_background(stack, "actions-dispatcher", dispatcher.run(), dispatcher.stop,
                         settings.shutdown_grace_s + 15)
            consumer = TransitionConsumer(kafka, settings, engine, KafkaWriter(producer), journeys,
                                          clock,
                                          on_created=dispatcher.wake,
                                          first_delay=dispatcher.schedule.first_delay)
            start_background(stack, "actions-consumer", consumer.run(), consumer.stop, 30)
            yield

    app = FastAPI(title="Polku actions", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.clock = clock
    add_delivery_routes(app)
    add_ops_routes(
        app,
        {
            "kafka": lambda: broker_reachable(kafka),
            "database": lambda: database_reachable(app.state.engine),
        },
    )
    return app
