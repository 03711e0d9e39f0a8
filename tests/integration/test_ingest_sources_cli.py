"""`polku sources` creates keys shown once, lists them by prefix only, rotates and revokes them."""

from __future__ import annotations

import uuid

from typer.testing import CliRunner

from services.ingest.sources_cli import app
from shared.settings import DatabaseSettings


def test_create_list_rotate_and_revoke(database_settings: DatabaseSettings) -> None:
    runner = CliRunner()
    env = {"POLKU_PG_DB": database_settings.db}
    name = f"site-{uuid.uuid4().hex[:6]}"

    created = runner.invoke(app, ["create", name, "--rate-limit", "50"], env=env)
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[0]
    assert key.startswith("wk_") and len(key) > 30

    duplicate = runner.invoke(app, ["create", name], env=env)
    assert duplicate.exit_code == 1
    assert "already exists" in duplicate.output

    listed = runner.invoke(app, ["list"], env=env)
    assert listed.exit_code == 0
    (line,) = [ln for ln in listed.stdout.splitlines() if ln.startswith(name)]
    assert key[:10] in line and key not in line
    assert "50" in line and "active" in line

    rotated = runner.invoke(app, ["rotate", name], env=env)
    assert rotated.exit_code == 0
    assert rotated.stdout.strip().splitlines()[0] != key

    revoked = runner.invoke(app, ["revoke", name], env=env)
    assert revoked.exit_code == 0 and "within 5 s" in revoked.output
    assert "revoked" in next(ln for ln in runner.invoke(app, ["list"], env=env).stdout
                             .splitlines() if ln.startswith(name))
    assert runner.invoke(app, ["revoke", name], env=env).exit_code == 1
    assert runner.invoke(app, ["revoke", "no-such-source"], env=env).exit_code == 1
