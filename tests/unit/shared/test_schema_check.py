"""`polku db check` and `polku db wait`: what a service's init container runs before the
service starts (deploy/k8s), so it starts only on the schema it was built for. On a SQLite
file here; the same code reads PostgreSQL's alembic_version."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app
from shared.db.migrate import SchemaUnreachable, schema_status, upgrade

NOTHING_LISTENS = "postgresql+asyncpg://polku:polku@127.0.0.1:9/polku"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'polku.db'}"


def polku(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["db", *args], env={"POLKU_DB_URL": url})
    return result.exit_code, result.output


def test_a_database_is_at_head_only_after_every_migration(url: str) -> None:
    assert not schema_status(url).at_head  # empty: not migrated at all
    upgrade(url, "0006")
    behind = schema_status(url)
    assert not behind.at_head
    assert behind.current == {"0006"}
    assert "0006" in behind.describe() and "polku db upgrade" in behind.describe()
    upgrade(url)
    assert schema_status(url).at_head


def test_db_check_exits_0_only_at_the_newest_revision(url: str) -> None:
    code, output = polku(url, "check")
    assert code == 1, output
    assert "not migrated" in output
    upgrade(url, "0006")
    assert polku(url, "check")[0] == 1
    upgrade(url)
    code, output = polku(url, "check")
    assert code == 0, output
    assert "newest revision" in output


def test_db_check_exits_2_when_the_database_does_not_answer() -> None:
    with pytest.raises(SchemaUnreachable):
        schema_status(NOTHING_LISTENS)
    code, output = polku(NOTHING_LISTENS, "check")
    assert code == 2, output
    assert "cannot read the schema revision" in output
    assert "polku:polku" not in output  # the URL (with its password) is never echoed


def test_db_wait_gives_up_on_a_schema_that_stays_behind(url: str) -> None:
    upgrade(url, "0006")
    started = time.monotonic()
    code, output = polku(url, "wait", "--timeout", "0.6", "--interval", "0.2")
    assert code == 1, output
    assert "gave up" in output
    assert time.monotonic() - started < 5


def test_db_wait_returns_once_another_process_has_migrated(url: str) -> None:
    upgrade(url, "0006")
    migrating = threading.Timer(0.5, upgrade, args=(url,))
    migrating.start()
    try:
        code, output = polku(url, "wait", "--timeout", "30", "--interval", "0.1")
    finally:
        migrating.join()
    assert code == 0, output
    assert "waiting" in output and "newest revision" in output
