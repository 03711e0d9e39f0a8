"""The embedded Polku: the ingest API, the stager and the actions worker in one process.

Same code as the distributed services; only the parts differ. This module chooses them: the
log is `shared.embedded_log` instead of Kafka and the database is one SQLite file instead of
PostgreSQL, both in `POLKU_DEV_DATA_DIR`; then it hands them to the same assembling functions
the distributed apps call (`attach`, `start_stager`, `start_actions`). One process owns that
directory (a lock file), which is what lets the log and the stores skip the coordination several
processes would need.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import logging
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import IO

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from services.actions import routes as delivery_api
from services.actions.egress import EgressPolicy
from services.actions.routes import DeliveryApi, add_delivery_routes
from services.actions.settings import ActionsSettings
from services.actions.signing import SigningSecrets
from services.actions.worker import start_actions
from services.dev.settings import DevSettings
from services.ingest.app import add_api_routes, attach
from services.ingest.publish import LogPublisher
from services.ingest.read_api import read_api_of
from services.ingest.settings import IngestSettings
from services.ingest.sources import DuplicateSource, create_source, rotate_key
from services.stager.settings import StagerSettings
from services.stager.worker import start_stager
from shared.clock import Clock, SystemClock
from shared.db.engine import database_reachable, make_engine
from shared.db.migrate import upgrade
from shared.embedded_log import EmbeddedLog
from shared.journey import load_journeys
from shared.ops import add_ops_routes
from shared.privacy import ErasureStores
from shared.runtime import start_background
from shared.settings import DatabaseSettings, ServiceSettings, TopicSettings

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


def demo_secret(settings: DevSettings) -> str:
    """The webhook secret of the example journeys: POLKU_DEMO_WEBHOOK_SECRET if set, else one
    generated once and kept in the data directory (so receivers keep verifying after a
    restart). Handed to the signer (`create_app`) and the sink as a value; the environment is
    left as it is."""
    given = settings.demo_webhook_secret
    if given is not None and given.get_secret_value():
        return given.get_secret_value()
    data_dir = settings.data_dir
    path = data_dir / "webhook-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        _write_private(path, "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode())
    return path.read_text().strip()


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


def write_key_of(app: FastAPI) -> str:
    """The `dev` source's write key (known once the app's lifespan has started)."""
    key: str = app.state.write_key
    return key


def create_app(
    settings: DevSettings,
    *,
    demo_secret: str,
    environ: Mapping[str, str],
    journeys_dir: Path | None = None,
    ingest: IngestSettings | None = None,
    stager: StagerSettings | None = None,
    actions: ActionsSettings | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """The embedded Polku; the services' settings not given are read from the environment.

    :param demo_secret: the webhook secret the example journeys sign with (`demo_secret`).
    :param environ: the process environment. The journeys' `${VAR}`s are expanded in it once,
        here; the signer looks up the secrets journeys name in it at every attempt (a rotation
        needs no restart), except POLKU_DEMO_WEBHOOK_SECRET, which is `demo_secret`.
    """
    clock = clock or SystemClock()
    topics = TopicSettings().topics
    ingest_settings = ingest or IngestSettings()
    stager_settings = stager or StagerSettings()
    actions_settings = actions or ActionsSettings()
    if "egress_allow" not in actions_settings.model_fields_set:  # POLKU_ACTIONS_EGRESS_ALLOW
        actions_settings = actions_settings.model_copy(update={"egress_allow": LOOPBACK})
    egress = EgressPolicy(actions_settings.egress_allow)
    signing_secrets = SigningSecrets(environ, given={DEMO_SECRET_ENV: demo_secret})
    # Refuse to start on an invalid journey: JourneyError names every problem.
    journeys = load_journeys(journeys_dir or ServiceSettings().journeys_dir,
                             {**environ, SINK_URL_ENV: settings.sink_url})

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Closed in reverse: the stager and the actions worker stop (the transition consumer,
        # then the dispatcher finishes the attempts it runs, then the HTTP transport closes),
        # then log pruning, the database and the lock.
        async with AsyncExitStack() as stack:
            stack.callback(lock_data_dir(settings.data_dir).close)
            await asyncio.to_thread(upgrade, settings.database_url)
            engine = make_engine(DatabaseSettings(url_override=settings.database_url))
            stack.push_async_callback(engine.dispose)
            app.state.write_key = await dev_write_key(engine, settings.data_dir)
            embedded_log = EmbeddedLog(engine, settings.partitions)
            attach(app, stack, engine, LogPublisher(embedded_log, topics.touchpoints,
                                                    ingest_settings.produce_timeout_s),
                   ingest_settings, journeys,
                   # No broker: an erase deletes the person's records from the log itself.
                   ErasureStores(topics.touchpoints, kafka_keeps_records=None))
            stopping = asyncio.Event()
            start_background(stack, "log-retention",
                             _prune_log(embedded_log, clock, settings.log_retention_days,
                                        stopping), stopping.set, 10)
            dispatcher = start_actions(
                stack, consumer=embedded_log.consumer(actions_settings.group_id),
                writer=embedded_log, engine=engine, settings=actions_settings, topics=topics,
                journeys=journeys, clock=clock, egress=egress, secrets=signing_secrets,
            )
            delivery_api.provide(app, DeliveryApi(engine, actions_settings.delivery_api_token,
                                                  clock, dispatcher))
            # Last: it also tunes the garbage collector for the stager's batches, which
            # dominate what this process allocates, and freezes what start-up created.
            start_stager(
                stack, consumer=embedded_log.consumer(stager_settings.group_id),
                writer=embedded_log, engine=engine, settings=stager_settings, topics=topics,
                journeys=journeys, clock=clock,
            )
            yield

    app = FastAPI(title="Polku (embedded)", version="0.1.0", description=DESCRIPTION,
                  lifespan=lifespan)
    add_api_routes(app)
    add_delivery_routes(app)
    add_ops_routes(app, {"database": lambda: database_reachable(read_api_of(app).engine)})
    return app


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
