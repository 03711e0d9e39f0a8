"""Which database an operator command works on: PostgreSQL, or with --dev `polku dev`'s file.

`polku sources` and `polku contacts` both take the choice as options of their command group;
each subcommand then finds it in its context's `obj`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from shared.db.migrate import upgrade
from shared.settings import DatabaseSettings


def add_database_choice(app: typer.Typer, help: str) -> None:
    """Give `app` the --dev and --data-dir options; `help` describes the command group."""

    @app.callback(help=help)
    def choose_database(
        ctx: typer.Context,
        dev: bool = typer.Option(
            False, "--dev", help="Use the embedded mode's SQLite file (`polku dev`) instead of "
            "PostgreSQL, in POLKU_DEV_DATA_DIR (default .polku/dev)."),
        data_dir: Path | None = typer.Option(
            None, "--data-dir", help="The embedded mode's data directory; implies --dev.",
            file_okay=False),
    ) -> None:
        ctx.obj = dev_database(data_dir) if dev or data_dir is not None else DatabaseSettings()


def chosen_database(ctx: typer.Context) -> DatabaseSettings:
    """What the group's options chose (a subcommand's context inherits its group's `obj`)."""
    return ctx.obj if isinstance(ctx.obj, DatabaseSettings) else DatabaseSettings()


def dev_database(data_dir: Path | None) -> DatabaseSettings:
    """The SQLite file of the embedded mode in `data_dir`, brought to the current schema: a
    command may run before the first `polku dev`. No lock is taken: a running `polku dev`
    keeps the directory locked, and SQLite lets this one short write wait for its turn."""
    from services.dev.settings import DevSettings

    settings = DevSettings() if data_dir is None else DevSettings(data_dir=data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    return DatabaseSettings(url_override=settings.database_url)
