"""`polku sources` creates keys shown once, lists them by prefix only, rotates and revokes them."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
from typer.testing import CliRunner

from services.cli import app as cli
from services.dev.settings import DevSettings
from services.ingest.sources import Source, SourceDirectory
from services.ingest.sources_cli import app
from shared.db.engine import make_engine
from shared.settings import DatabaseSettings, KafkaSettings
from tests.processes import ServiceProcess, free_port, service_env


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


async def _source_of(data_dir: Path, key: str) -> Source | None:
    """What the embedded mode's ingest finds for `key` in the SQLite file of `data_dir`."""
    engine = make_engine(DatabaseSettings(url_override=DevSettings(data_dir=data_dir)
                                          .database_url))
    try:
        return await SourceDirectory(engine, ttl_s=0, lookup_timeout_s=5).find(key)
    finally:
        await engine.dispose()


def test_dev_sources_live_in_the_embedded_file_and_a_running_polku_dev_accepts_them(
    tmp_path: Path,
) -> None:
    runner = CliRunner()
    data_dir = tmp_path / "dev"
    # PostgreSQL is out of reach: a command that still went there would fail.
    env = {"POLKU_PG_PORT": "9", "POLKU_DB_URL": "", "POLKU_DEV_DATA_DIR": str(data_dir)}

    # Before the first `polku dev`: the file and its schema are created.
    created = runner.invoke(cli, ["sources", "--dev", "create", "www"], env=env)
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[0]
    assert (data_dir / "polku.db").exists()
    found = asyncio.run(_source_of(data_dir, key))
    assert found is not None and found.name == "www"
    listed = runner.invoke(cli, ["sources", "--data-dir", str(data_dir), "list"], env=env)
    assert listed.exit_code == 0 and any(ln.startswith("www") for ln in listed.stdout.splitlines())

    dev = ServiceProcess("dev", {**service_env(KafkaSettings(), DatabaseSettings()),
                                 "POLKU_DEV_DATA_DIR": str(data_dir),
                                 "POLKU_DEV_SINK_PORT": str(free_port())}).start()
    try:
        dev.wait_status("/readyz", 200, timeout_s=60)
        # And while it runs: the second key is written beside the live process.
        later = runner.invoke(cli, ["sources", "--data-dir", str(data_dir), "create", "ios"],
                              env=env)
        assert later.exit_code == 0, later.output
        for write_key in (key, later.stdout.strip().splitlines()[0]):
            answer = httpx.post(f"{dev.url}/v1/track", auth=(write_key, ""), timeout=10,
                                json={"userId": "u-1", "event": "Signed Up"})
            assert answer.status_code == 200, answer.text
        wrong = httpx.post(f"{dev.url}/v1/track", auth=("wk_not-a-key", ""), timeout=10,
                           json={"userId": "u-1", "event": "Signed Up"})
        assert wrong.status_code == 401
    finally:
        dev.kill()
