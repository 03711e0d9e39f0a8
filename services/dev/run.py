"""`polku dev`: serves the embedded Polku and its webhook sink, and optionally demo traffic."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from services.actions.settings import ActionsSettings
from services.dev.app import create_app, demo_secret, lock_data_dir, write_key_of
from services.dev.demo import run_demo
from services.dev.settings import DevSettings
from services.dev.sink import create_sink
from services.ingest.settings import IngestSettings
from shared.logs import LogFormat, configure_logging


class _SecondaryServer(uvicorn.Server):
    """The sink's server: the API server owns the signals, and stops this one itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def banner(settings: DevSettings, write_key: str, demo: bool) -> str:
    api = f"http://{settings.host}:{settings.port}"
    sink = settings.sink_url
    lines = [
        "",
        "Polku is running in embedded mode (one process, no Kafka, no PostgreSQL).",
        f"  API          {api}        interactive docs: {api}/docs",
        f"  write key    {write_key}   (source 'dev'; HTTP Basic user, empty password)",
        f"  journeys     {api}/v1/journeys",
        f"  a contact    {api}/v1/contacts/<userId>",
        f"  deliveries   {api}/v1/deliveries      metrics: {api}/metrics",
        f"  webhooks     {sink}/deliveries   (built-in sink: each verified, shown below)",
        f"  data         {settings.database_file}",
        "",
        "Send an event:",
        f"  curl -u {write_key}: {api}/v1/track -H 'content-type: application/json' \\",
        "       -d '{\"userId\": \"me\", \"event\": \"Signed Up\"}'",
        "",
    ]
    if demo:
        lines.append("Demo traffic is on: personas walk the example journeys; "
                     "GET /v1/contacts/<id> for any id in the sink's bodies. Ctrl-C stops.")
    return "\n".join(lines)


async def serve_dev(settings: DevSettings, demo: bool, log_level: str, *,
                    journeys_dir: Path | None = None, ingest: IngestSettings | None = None,
                    actions: ActionsSettings | None = None, log_format: LogFormat = "text"
                    ) -> None:
    """Serve until stopped; settings not given are read from the environment. With JSON logs
    the banner and the sink's lines are log records too (neither names a person)."""
    lock_data_dir(settings.data_dir).close()  # a clear message now, not a failed start-up
    secret = demo_secret(settings)
    configure_logging(log_level, log_format, "dev")
    show = print if log_format == "text" else logging.getLogger("polku.dev.sink").info
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the demo's own requests
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # The one place the embedded mode reads the process environment as a whole (the services'
    # settings classes read their own variables); see create_app for what it is used for.
    app = create_app(settings, demo_secret=secret, environ=os.environ, journeys_dir=journeys_dir,
                     ingest=ingest, actions=actions)
    # uvicorn's own text handlers, or none: its records then reach the JSON handler.
    log_config = LOGGING_CONFIG if log_format == "text" else None
    api = uvicorn.Server(uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=log_level,
        access_log=False, timeout_graceful_shutdown=20, log_config=log_config,
    ))
    sink = _SecondaryServer(uvicorn.Config(
        # Loopback only, whatever the API binds: the sink has no token (DevSettings.sink_url).
        create_sink(lambda: secret, show), host="127.0.0.1",
        port=settings.sink_port, log_level="warning", access_log=False, lifespan="off",
        log_config=log_config,
    ))
    sink_task = asyncio.create_task(sink.serve(), name="sink")
    api_task = asyncio.create_task(api.serve(), name="api")
    while not api.started and not api_task.done():  # noqa: ASYNC110 (uvicorn has no event)
        await asyncio.sleep(0.05)
    stop_demo = asyncio.Event()
    demo_task = None
    if api.started:
        write_key = write_key_of(app)
        if log_format == "text":
            print(banner(settings, write_key, demo), flush=True)
        else:
            logging.getLogger("polku.dev").info(banner(settings, write_key, demo).strip())
        if demo:
            demo_task = asyncio.create_task(run_demo(
                f"http://{settings.host}:{settings.port}", write_key,
                settings.demo_contacts_per_s, stop_demo))
    while not api_task.done():
        if api.should_exit:  # Ctrl-C or SIGTERM: no new demo traffic while draining
            stop_demo.set()
        await asyncio.sleep(0.1)
    stop_demo.set()
    if demo_task is not None:
        await demo_task
    sink.should_exit = True
    await sink_task
    api_task.result()

