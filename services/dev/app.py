"""The embedded Polku: the ingest API, the stager and the actions worker in one process.

Same code as the distributed services; only the adapters differ. The log is
`shared.embedded_log` instead of Kafka and the database is one SQLite file instead of
PostgreSQL, both in `POLKU_DEV_DATA_DIR`. One process owns that directory (a lock file), which
is what lets the log and the stores skip the coordination several processes would need.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import logging
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import IO

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from services.actions.consumer import TransitionConsumer
from services.actions.dispatcher import Dispatcher
from services.actions.egress import EgressPolicy, guarded_transport
from services.actions.routes import add_delivery_routes
from services.actions.settings import ActionsSettings
from services.dev.settings import DevSettings
from services.ingest.app import add_api_routes, attach
from services.ingest.publish import LogPublisher
from services.ingest.settings import IngestSettings
from services.ingest.sources import DuplicateSource, create_source, rotate_key
from services.stager.consumer import Stager
from services.stager.settings import StagerSettings
from shared.clock import Clock, SystemClock
from shared.db.engine import database_reachable, make_engine
from shared.db.migrate import upgrade
from shared.embedded_log import EmbeddedLog
from shared.journey.journey import Journey
from shared.journey.loader import load_journeys
from shared.ops import add_ops_routes
from shared.runtime import collect_less_often, start_background
from shared.settings import DatabaseSettings, KafkaSettings, ServiceSettings

log = logging.getLogger("polku.dev")

DESCRIPTION = """\
Polku in embedded mode: the [Segment HTTP Tracking API](https://segment.com/docs/connections/\
sources/catalog/libraries/server/http-api/), the read API and the webhook deliveries API of the
distributed services, in one process on one SQLite file. A 2xx means every accepted event is
committed to the embedded log on disk. See docs/embedded.md.
"""

# The source whose write key `polku dev` prints and the demo traffic uses.
DEV_SOURCE = "dev"
# The secret the example journeys sign with (their webhooks name this variable).
DEMO_SECRET_ENV = "POLKU_DEMO_WEBHOOK_SECRET"
# Where the example journeys send their webhooks (`${POLKU_DEV_SINK_URL:-...}/hooks/...`): the
# journeys are read with it set to the sink this process runs, wherever POLKU_DEV_SINK_PORT is.
SINK_URL_ENV = "POLKU_DEV_SINK_URL"
# Loopback is where the built-in sink listens; the distributed mode refuses it unless allowed.
LOOPBACK = ("127.0.0.0/8", "::1/128")
LOG_PRUNE_EVERY_S = 600.0
# The file whose flock marks the data directory as in use (services/dev/reset.py checks it).
LOCK_FILE = "polku.lock"


class DataDirInUse(Exception):
    """Another process already runs Polku on this data directory."""


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold an exclusive lock on the data directory for the life of the process; the kernel
    releases it when the process dies, even by SIGKILL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / LOCK_FILE).open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataDirInUse(f"another polku process is using {data_dir}") from None
    return handle


def demo_secret(data_dir: Path) -> str:
    """The webhook secret of the example journeys: POLKU_DEMO_WEBHOOK_SECRET if set, else one
    generated once and kept in the data directory (so receivers keep verifying after a
    restart). Exported to the environment, where the signer and the sink read it."""
    secret = os.environ.get(DEMO_SECRET_ENV)
    if not secret:
        path = data_dir / "webhook-secret"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            _write_private(path, "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode())
        secret = path.read_text().strip()
        os.environ[DEMO_SECRET_ENV] = secret
    return secret


async def dev_write_key(engine: AsyncEngine, data_dir: Path) -> str:
    """The write key of the `dev` source, created on first start and kept in the data
    directory (only its hash is in the database, as for every source)."""
    path = data_dir / "write-key"
    if path.exists():
        return path.read_text().strip()
    try:
        _, key = await create_source(engine, DEV_SOURCE)
    except DuplicateSource:  # the key file was deleted: issue a new key
        key = await rotate_key(engine, DEV_SOURCE) or ""
    _write_private(path, key)
    return key


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")


def create_app(
    settings: DevSettings | None = None,
    journeys_dir: Path | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    settings = settings or DevSettings()
    clock = clock or SystemClock()
    topics = KafkaSettings(partitions=settings.partitions)  # only the topic names are used
    ingest_settings = IngestSettings()
    stager_settings = StagerSettings()
    actions_settings = ActionsSettings()
    if "POLKU_ACTIONS_EGRESS_ALLOW" not in os.environ:
        actions_settings = actions_settings.model_copy(update={"egress_allow": LOOPBACK})
    # Refuse to start on an invalid journey: JourneyError names every problem.
    journeys = load_journeys(journeys_dir or ServiceSettings().journeys_dir,
                             {**os.environ, SINK_URL_ENV: settings.sink_url})

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.callback(lock_data_dir(settings.data_dir).close)
            await asyncio.to_thread(upgrade, settings.database_url)
            engine = make_engine(DatabaseSettings(url_override=settings.database_url))
            stack.push_async_callback(engine.dispose)
            app.state.write_key = await dev_write_key(engine, settings.data_dir)
            embedded_log = EmbeddedLog(engine, settings.partitions)
            app.state.log = embedded_log
            attach(app, engine, LogPublisher(embedded_log, topics.touchpoints_topic,
                                             ingest_settings.produce_timeout_s),
                   ingest_settings, journeys)
            await _start_workers(stack, app, embedded_log, topics, stager_settings,
                                 actions_settings, journeys, clock)
            stopping = asyncio.Event()
            start_background(stack, "log-retention",
                             _prune_log(embedded_log, clock, settings.log_retention_days,
                                        stopping), stopping.set, 10)
            # The stager's batches dominate what the process allocates (see shared/runtime.py).
            collect_less_often(50_000, 20, freeze=True)
            yield

    app = FastAPI(title="Polku (embedded)", version="0.1.0", description=DESCRIPTION,
                  lifespan=lifespan)
    app.state.settings = actions_settings  # the deliveries API reads it (admin token)
    app.state.clock = clock
    add_api_routes(app)
    add_delivery_routes(app)
    add_ops_routes(app, {"database": lambda: database_reachable(app.state.engine)})
    return app


async def _start_workers(
    stack: AsyncExitStack, app: FastAPI, embedded_log: EmbeddedLog, topics: KafkaSettings,
    stager_settings: StagerSettings, actions_settings: ActionsSettings,
    journeys: Sequence[Journey], clock: Clock,
) -> None:
    """The stager and the actions worker of the distributed mode, on the embedded log. Closed
    in reverse: the transition consumer and the stager stop, then the dispatcher finishes the
    attempts it runs, then the HTTP transport closes."""
    engine = embedded_log.engine
    transport = guarded_transport(EgressPolicy(actions_settings.egress_allow))
    stack.push_async_callback(transport.aclose)
    dispatcher = Dispatcher(engine, actions_settings, transport, clock)
    app.state.dispatcher = dispatcher
    start_background(stack, "actions-dispatcher", dispatcher.run(), dispatcher.stop,
                     actions_settings.shutdown_grace_s + 15)
    stager = Stager(topics, stager_settings, engine, embedded_log, journeys, clock,
                    consumer=embedded_log.consumer(stager_settings.group_id))
    app.state.stager = stager
    start_background(stack, "stager", stager.run(), stager.stop, 30)
    consumer = TransitionConsumer(
        topics, actions_settings, engine, embedded_log, {j.id: j for j in journeys}, clock,
        on_created=dispatcher.wake, first_delay=dispatcher.schedule.first_delay,
        consumer=embedded_log.consumer(actions_settings.group_id),
    )
    start_background(stack, "actions-consumer", consumer.run(), consumer.stop, 30)


async def _prune_log(embedded_log: EmbeddedLog, clock: Clock, retention_days: float,
                     stopping: asyncio.Event) -> None:
    while retention_days > 0 and not stopping.is_set():
        try:
            await embedded_log.prune(clock.now() - timedelta(days=retention_days))
        except Exception as exc:  # a failed prune only delays the next one
            log.warning("pruning the embedded log failed (%s)", type(exc).__name__)
        try:
            await asyncio.wait_for(stopping.wait(), LOG_PRUNE_EVERY_S)
        except TimeoutError:
            pass
