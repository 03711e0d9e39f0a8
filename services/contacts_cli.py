"""`polku contacts`: erase people and take ids off the suppression list (docs/privacy.md).

Talks to the database directly, like `polku sources`: PostgreSQL (`POLKU_PG_*` or
`POLKU_DB_URL`) for the distributed mode, or with `--dev` / `--data-dir` the embedded mode's
SQLite file (a running `polku dev` may keep it; each erase waits for its turn to write). Each
id is erased in its own transaction, so an interrupted run leaves every person either wholly
erased, with a receipt, or untouched: running it again finishes the job.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from services.cli_database import add_database_choice, chosen_database
from services.ingest.privacy_api import MAX_ID_CHARS
from services.ingest.settings import IngestSettings
from shared.db.engine import make_engine
from shared.privacy import ErasureStores, erase_person, kafka_expiry, unsuppress
from shared.settings import DatabaseSettings, KafkaSettings, TopicSettings

app = typer.Typer(help="Erase people and manage the suppression list.", no_args_is_help=True)


add_database_choice(app, "Erase people and manage the suppression list, in PostgreSQL or, with "
                         "--dev, in `polku dev`'s file.")


def _ids(given: list[str], file: Path | None) -> list[str]:
    ids = list(given)
    if file is not None:
        text = file.read_text(encoding="utf-8")
        ids.extend(line.strip() for line in text.splitlines() if line.strip())
    if not ids:
        raise typer.BadParameter("give at least one ID, or --file", param_hint="ID")
    for number, contact_id in enumerate(ids, 1):
        if len(contact_id) > MAX_ID_CHARS or "\x00" in contact_id:
            raise typer.BadParameter(f"id number {number} is longer than {MAX_ID_CHARS} "
                                     "characters or contains NUL", param_hint="ID")
    return list(dict.fromkeys(ids))  # each once, in order


def _stores(database: DatabaseSettings) -> ErasureStores:
    if database.url.startswith("sqlite"):
        return ErasureStores(TopicSettings().touchpoints_topic, kafka_keeps_records=None)
    kafka = KafkaSettings()
    refresh = timedelta(seconds=IngestSettings().suppression_refresh_s)
    return ErasureStores(kafka.touchpoints_topic,
                         kafka_expiry(kafka.retention, kafka.segment, refresh))


def _echo(document: dict[str, Any]) -> None:
    typer.echo(json.dumps(document, separators=(",", ":")))


@app.command()
def erase(
    ctx: typer.Context,
    ids: list[str] = typer.Argument(None, help="userIds or anonymousIds, each naming a person"),
    file: Path | None = typer.Option(None, "--file", exists=True, dir_okay=False,
                                     help="More ids, one per line"),
) -> None:
    """Erase each person (every id linked to it); print one receipt per id, as a JSON line."""
    wanted = _ids(ids or [], file)
    database = chosen_database(ctx)
    stores = _stores(database)

    async def main() -> None:
        engine = make_engine(database, pool_size=1)
        try:
            for contact_id in wanted:
                receipt = await erase_person(engine, contact_id, stores, datetime.now(UTC))
                _echo(receipt.as_json())
        finally:
            await engine.dispose()

    asyncio.run(main())


@app.command("unsuppress")
def unsuppress_(
    ctx: typer.Context,
    ids: list[str] = typer.Argument(..., help="Ids whose new events are accepted again"),
) -> None:
    """Take ids off the suppression list; nothing erased comes back."""
    wanted = _ids(ids, None)
    database = chosen_database(ctx)

    async def main() -> dict[str, bool]:
        engine = make_engine(database, pool_size=1)
        try:
            return await unsuppress(engine, wanted)
        finally:
            await engine.dispose()

    for hashed, was_listed in asyncio.run(main()).items():
        _echo({"id_hash": hashed, "unsuppressed": was_listed})
