"""The `polku` command: starts each service and runs the operator's tasks.

Each command reads its settings once, checks them, and hands the same values to the app it
serves (what was checked is what runs).
"""

from __future__ import annotations

import logging

import typer
from pydantic import ValidationError

from services.contacts_cli import app as contacts_app
from services.ingest.sources_cli import app as sources_app
from services.journeys_cli import app as journeys_app
from services.journeys_cli import simulate as simulate_command
from shared.bearer import ApiToken, refuse_to_serve
from shared.logs import configure_logging, writes_json
from shared.settings import DatabaseSettings, ServiceSettings

app = typer.Typer(help="Polku: live customer-journey stages and webhooks.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(journeys_app, name="journeys")
app.add_typer(sources_app, name="sources")
app.add_typer(contacts_app, name="contacts")
app.command("simulate", help="Replay events through a journey offline; print each path.")(
    simulate_command
)

log = logging.getLogger("polku.cli")


@app.callback()
def _logging() -> None:
    """With POLKU_LOG_FORMAT=json every command logs JSON lines (a service's own set-up then
    replaces this one, naming the service); text stays as it always was."""
    try:
        settings = ServiceSettings()
    except ValidationError as exc:  # one line naming the variables, not a traceback
        wrong = ", ".join(f"POLKU_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
                          for e in exc.errors())
        typer.echo(f"polku: invalid settings: {wrong}", err=True)
        raise typer.Exit(2) from None
    if settings.log_format == "json":
        configure_logging(settings.log_level, "json", "cli")


def complain(message: str) -> None:
    """Why a command stops: a JSON log line when the logs are JSON, else a line on stderr."""
    if writes_json():
        log.error(message)
    else:
        typer.echo(message, err=True)


def report(message: str) -> None:
    """What an operator's task did (not a command's answer, which stays on stdout as is)."""
    if writes_json():
        log.info(message)
    else:
        typer.echo(message)


def refuse_unprotected(command: str, host: str, tokens: list[ApiToken],
                       host_setting: str = "POLKU_HOST") -> None:
    """Exit (2) with the reason when `host` is no place to serve these APIs with these tokens;
    runs before anything connects, so the answer comes at once and without a traceback."""
    problem = refuse_to_serve(host, tokens, host_setting)
    if problem is not None:
        complain(f"polku {command}: not starting: {problem}")
        raise typer.Exit(2)


@app.command()
def ingest() -> None:
    """Run the ingest HTTP API (Segment-compatible)."""
    from services.ingest.settings import IngestSettings

    settings = ServiceSettings()
    ingest_settings = IngestSettings()
    refuse_unprotected("ingest", settings.host, [ingest_settings.read_api_token,
                                                 ingest_settings.admin_api_token])
    from services.ingest.app import create_app
    from shared.serve import serve

    serve(create_app(settings=ingest_settings, journeys_dir=settings.journeys_dir),
          settings.host, settings.ingest_port, settings.log_level,
          log_format=settings.log_format, service="ingest")


@app.command()
def stager() -> None:
    """Run the stager: touchpoints in, stages and transitions out."""
    from services.stager.app import create_app
    from shared.journey import JourneyError
    from shared.serve import serve

    settings = ServiceSettings()
    try:
        stager_app = create_app(journeys_dir=settings.journeys_dir)
    except JourneyError as exc:
        complain(f"polku stager: not starting, the journeys in {settings.journeys_dir} "
                 f"are invalid:\n{exc}")
        raise typer.Exit(2) from exc
    serve(stager_app, settings.host, settings.stager_port, settings.log_level,
          log_format=settings.log_format, service="stager")


@app.command()
def actions() -> None:
    """Run the actions worker: transitions in, signed webhooks out."""
    from services.actions.settings import ActionsSettings

    settings = ServiceSettings()
    actions_settings = ActionsSettings()
    refuse_unprotected("actions", settings.host, [actions_settings.delivery_api_token])
    from services.actions.app import create_app
    from shared.serve import serve

    serve(create_app(settings=actions_settings, journeys_dir=settings.journeys_dir),
          settings.host, settings.actions_port, settings.log_level,
          log_format=settings.log_format, service="actions")


@app.command()
def dev(
    demo: bool = typer.Option(False, "--demo/--no-demo",
                              help="Feed demo traffic: personas walking the example journeys."),
    reset: bool = typer.Option(False, "--reset",
                               help="Start from an empty state: delete a stopped Polku's "
                                    "files in POLKU_DEV_DATA_DIR (refused while one runs)."),
) -> None:
    """Run all of Polku in one process on one SQLite file: no Kafka, no PostgreSQL."""
    import asyncio

    from services.actions.settings import ActionsSettings
    from services.dev.app import DataDirInUse
    from services.dev.reset import NotADataDir, reset_data_dir
    from services.dev.run import serve_dev
    from services.dev.settings import DevSettings
    from services.ingest.settings import IngestSettings
    from shared.journey import JourneyError

    settings = DevSettings()
    ingest_settings, actions_settings = IngestSettings(), ActionsSettings()
    # One process serves the three APIs: each keeps its own token (shared/bearer.py).
    refuse_unprotected("dev", settings.host, [ingest_settings.read_api_token,
                                              actions_settings.delivery_api_token,
                                              ingest_settings.admin_api_token],
                       "POLKU_DEV_HOST")
    if reset:
        try:
            reset_data_dir(settings.data_dir)
        except DataDirInUse as exc:
            complain(f"polku dev --reset: not resetting, {exc} (its data is kept); stop it "
                     "first, or set POLKU_DEV_DATA_DIR to another directory")
            raise typer.Exit(1) from exc
        except NotADataDir as exc:
            complain(f"polku dev --reset: not resetting, {exc}; check POLKU_DEV_DATA_DIR")
            raise typer.Exit(1) from exc
    try:
        service = ServiceSettings()
        asyncio.run(serve_dev(settings, demo, service.log_level,
                              journeys_dir=service.journeys_dir, ingest=ingest_settings,
                              actions=actions_settings, log_format=service.log_format))
    except DataDirInUse as exc:
        complain(f"polku dev: {exc}; stop it first, or set POLKU_DEV_DATA_DIR")
        raise typer.Exit(1) from exc
    except JourneyError as exc:
        complain(f"polku dev: not starting, the journeys are invalid:\n{exc}")
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:
        pass


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply the schema migrations to the configured database."""
    from shared.db.migrate import upgrade

    upgrade(DatabaseSettings().url, revision)
    report(f"database at revision {revision}")


@db_app.command("check")
def db_check() -> None:
    """Exit 0 when the schema is at the newest revision this Polku knows; 1 when it is behind
    (or was migrated by a newer Polku), 2 when the database does not answer."""
    from shared.db.migrate import SchemaUnreachable, schema_status

    try:
        status = schema_status(DatabaseSettings().url)
    except SchemaUnreachable as exc:
        complain(f"polku db check: {exc}")
        raise typer.Exit(2) from exc
    if not status.at_head:
        complain(f"polku db check: {status.describe()}")
        raise typer.Exit(1)
    report(status.describe())


@db_app.command("wait")
def db_wait(
    timeout_s: float = typer.Option(600.0, "--timeout", help="Give up after this many seconds."),
    interval_s: float = typer.Option(2.0, "--interval", help="Seconds between two checks."),
) -> None:
    """Wait until the schema is at the newest revision (another process migrates it), then
    exit 0; exit 1 when the timeout runs out first. For a service's init container."""
    import time

    from shared.db.migrate import SchemaUnreachable, schema_status

    url = DatabaseSettings().url
    deadline = time.monotonic() + timeout_s
    said = ""
    while True:
        try:
            status = schema_status(url)
            if status.at_head:
                report(status.describe())
                return
            problem = status.describe()
        except SchemaUnreachable as exc:
            problem = str(exc)
        if problem != said:  # each new state once, not every interval
            report(f"polku db wait: {problem}; waiting")
            said = problem
        if time.monotonic() + interval_s > deadline:
            complain(f"polku db wait: gave up after {timeout_s:g} s: {problem}")
            raise typer.Exit(1)
        time.sleep(interval_s)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
