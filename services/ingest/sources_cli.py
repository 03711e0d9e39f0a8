"""`polku sources`: create, list, rotate and revoke the write keys websites and apps send with.

The keys live where ingest reads them: PostgreSQL (the `POLKU_PG_*` settings or `POLKU_DB_URL`)
for the distributed mode, or, with `--dev` / `--data-dir`, the SQLite file of the embedded
mode, so `polku sources --dev create www` issues a key a running `polku dev` accepts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from services.cli_database import add_database_choice, chosen_database
from services.ingest.settings import IngestSettings
from services.ingest.sources import (
    DuplicateSource,
    create_source,
    list_sources,
    revoke_source,
    rotate_key,
)
from shared.db.engine import make_engine

app = typer.Typer(help="Sources and their write keys.", no_args_is_help=True)

T = TypeVar("T")


add_database_choice(
    app, "Sources and their write keys, in PostgreSQL or, with --dev, in `polku dev`'s file.")


def _run(ctx: typer.Context, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    database = chosen_database(ctx)

    async def main() -> T:
        engine = make_engine(database, pool_size=1)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _ttl() -> str:
    return f"{IngestSettings().key_cache_ttl_s:g} s"


@app.command()
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A name for the site or app, e.g. www or ios"),
    rate_limit: float | None = typer.Option(
        None, "--rate-limit", min=0, help="Events per second this source may send (default: "
        "no limit)"
    ),
) -> None:
    """Create a source and print its write key (shown this once; only a hash is stored)."""
    try:
        _, key = _run(ctx, lambda engine: create_source(engine, name, rate_limit))
    except DuplicateSource as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(key)
    typer.echo(f"write key for source {name!r}: store it now, it cannot be shown again",
               err=True)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List sources with the first characters of their keys (never the keys)."""
    rows = _run(ctx, list_sources)
    if not rows:
        dev = " --dev" if ctx.obj is not None and ctx.obj.url.startswith("sqlite") else ""
        typer.echo(f"no sources; create one with `polku sources{dev} create NAME`")
        return
    typer.echo(f"{'name':<24} {'key':<14} {'limit/s':>8}  {'created':<20} status")
    for row in rows:
        limit = f"{row.rate_limit_per_s:g}" if row.rate_limit_per_s is not None else "-"
        status = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
        typer.echo(f"{row.name:<24} {row.key_prefix + '…':<14} {limit:>8}  "
                   f"{row.created_at:%Y-%m-%d %H:%M:%S}  {status}")


@app.command()
def revoke(ctx: typer.Context,
           name: str = typer.Argument(..., help="The source whose key stops working")) -> None:
    """Revoke a source's write key; running ingest processes refuse it within the cache TTL."""
    if not _run(ctx, lambda engine: revoke_source(engine, name)):
        typer.echo(f"error: no active source named {name!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {name!r}; ingest refuses its key within {_ttl()}")


@app.command()
def rotate(ctx: typer.Context,
           name: str = typer.Argument(..., help="The source that gets a new key")) -> None:
    """Give a source a new write key (printed once); the old one stops within the cache TTL."""
    key = _run(ctx, lambda engine: rotate_key(engine, name))
    if key is None:
        typer.echo(f"error: no source named {name!r}", err=True)
        raise typer.Exit(1)
    typer.echo(key)
    typer.echo(f"new write key for {name!r}; the old key stops working within {_ttl()}",
               err=True)
