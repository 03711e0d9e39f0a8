"""The JSON log line (shared/logs.py) and the CLI's logs under POLKU_LOG_FORMAT=json; the whole
pipeline's logs are checked with a canary in tests/e2e/test_json_logs.py."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.logs import REQUEST_ID, JsonFormatter, configure_logging, writes_json

ROOT = Path(__file__).resolve().parents[3]


def record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("polku.test", logging.ERROR, __file__, 1, message, args, exc_info)


def line(formatted: logging.LogRecord) -> dict[str, Any]:
    text = JsonFormatter("stager").format(formatted)
    assert "\n" not in text
    return dict(json.loads(text))


def test_a_line_has_time_level_service_logger_and_message() -> None:
    found = line(record("partition %d batch failed (%s)", 3, "OSError"))
    assert found.keys() == {"time", "level", "service", "logger", "message"}
    assert found["time"].endswith("Z") and "T" in found["time"]
    assert (found["level"], found["service"], found["logger"]) == ("error", "stager", "polku.test")
    assert found["message"] == "partition 3 batch failed (OSError)"


def test_a_line_written_while_a_request_is_served_carries_its_id() -> None:
    token = REQUEST_ID.set("req-1")
    try:
        assert line(record("x"))["request_id"] == "req-1"
    finally:
        REQUEST_ID.reset(token)
    assert "request_id" not in line(record("x"))


def test_an_error_gives_its_type_and_frames_but_not_its_message() -> None:
    def refuse(email: str) -> None:
        raise KeyError(f"duplicate key (contact)=({email})")

    try:
        refuse("canary@example.com")
    except KeyError as exc:
        found = line(record("writing failed", exc=exc))
    assert found["exc_type"] == "KeyError"
    assert any("in refuse" in frame for frame in found["stack"])
    assert "canary" not in json.dumps(found)


def test_json_set_up_twice_leaves_one_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    configure_logging("info", "json", "cli")
    configure_logging("warning", "json", "ingest")
    assert writes_json() and len(root.handlers) == 1
    formatter = root.handlers[0].formatter
    assert isinstance(formatter, JsonFormatter) and formatter.service == "ingest"
    assert root.level == logging.WARNING


def polku(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=120, env={**os.environ, **env})


def test_the_cli_logs_json_lines(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'polku.db'}"
    done = polku("db", "upgrade", POLKU_DB_URL=url, POLKU_LOG_FORMAT="json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(text) for text in (done.stdout + done.stderr).splitlines()]
    assert lines and all(found["service"] == "cli" for found in lines)
    assert any(found["logger"].startswith("alembic") for found in lines)  # the migrations
    assert lines[-1]["message"] == "database at revision head"


def test_a_refusal_to_start_is_a_json_line_too() -> None:
    done = polku("ingest", POLKU_HOST="0.0.0.0", POLKU_LOG_FORMAT="json",
                 POLKU_INGEST_READ_TOKEN="", POLKU_INGEST_ADMIN_TOKEN="")
    assert done.returncode == 2
    [found] = [json.loads(text) for text in (done.stdout + done.stderr).splitlines()]
    assert found["level"] == "error" and "POLKU_INGEST_READ_TOKEN" in found["message"]


def test_the_default_format_is_still_plain_text(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'polku.db'}"
    done = polku("db", "upgrade", POLKU_DB_URL=url, POLKU_LOG_FORMAT="text")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "database at revision head\n"


def test_an_unknown_log_format_is_refused_naming_the_variable() -> None:
    done = polku("journeys", "validate", "journeys/", POLKU_LOG_FORMAT="yaml")
    assert done.returncode == 2
    assert done.stderr.startswith("polku: invalid settings: POLKU_LOG_FORMAT:")
