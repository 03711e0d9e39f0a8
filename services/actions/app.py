"""The actions service: delivers signed webhooks for stage transitions."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from services.actions.consumer import TransitionConsumer
from services.actions.dispatcher import Dispatcher
from services.actions.egress import EgressPolicy, guarded_transport
from services.actions.routes import add_delivery_routes
from services.actions.settings import ActionsSettings
from shared.clock import Clock, SystemClock
from shared.db.engine import database_reachable, make_engine
from shared.journey import load_journeys
from shared.kafka import broker_reachable, durable_producer, ensure_topics
from shared.ops import add_ops_routes
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
            await _start(stack, "actions-dispatcher", dispatcher.run(), dispatcher.stop,
                         settings.shutdown_grace_s + 15)
            consumer = TransitionConsumer(kafka, settings, engine, producer, journeys, clock,
                                          on_created=dispatcher.wake,
                                          first_delay=dispatcher.schedule.first_delay)
            await _start(stack, "actions-consumer", consumer.run(), consumer.stop, 30)
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


async def _start(stack: AsyncExitStack, name: str, work: Coroutine[Any, Any, None],
                 stop: Callable[[], None], timeout_s: float) -> None:
    """Run `work` as a task until shutdown, when `stop()` asks it to finish."""
    task = asyncio.create_task(work, name=name)
    task.add_done_callback(_crash_loudly)

    async def finish() -> None:
        stop()
        try:
            await asyncio.wait_for(task, timeout_s)
        except (TimeoutError, asyncio.CancelledError):
            log.warning("%s did not stop within %.0f s", name, timeout_s)
        except Exception:  # already logged by _crash_loudly
            pass

    stack.push_async_callback(finish)


def _crash_loudly(task: asyncio.Task[None]) -> None:
    """A loop that died of a bug must not leave a healthy-looking process behind: exit."""
    if not task.cancelled() and task.exception() is not None:
        log.critical("%s died", task.get_name(), exc_info=task.exception())
        os.kill(os.getpid(), signal.SIGTERM)

