"""How every Polku process writes its log: plain text lines (the default), or one JSON object
per line with `POLKU_LOG_FORMAT=json`, for a log shipper.

A JSON line has `time` (ISO 8601, UTC), `level`, `service`, `logger` and `message`; while
ingest answers a request, `request_id` (services/ingest/request_ids.py sets REQUEST_ID); and
for an error, `exc_type` and `stack` (file, line and function of each frame). Never the
exception's message, and never a frame's locals: a driver's message can quote the row it
refused, with a contact id or a trait in it. Polku's own messages name no person (contact ids,
traits and payloads stay out of them), so the message itself is written as it is.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The id of the HTTP request being answered in this task, if any.
REQUEST_ID: ContextVar[str | None] = ContextVar("polku_request_id", default=None)

# Frames kept of an error's stack, innermost last.
STACK_FRAMES = 30


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            line["request_id"] = request_id
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            line["exc_type"] = exception_type(error)
            frames = traceback.extract_tb(error.__traceback__)[-STACK_FRAMES:]
            line["stack"] = [f"{f.filename}:{f.lineno} in {f.name}" for f in frames]
        return json.dumps(line, ensure_ascii=False, default=str)


def exception_type(error: BaseException) -> str:
    kind = type(error)
    return kind.__qualname__ if kind.__module__ == "builtins" else \
        f"{kind.__module__}.{kind.__qualname__}"


class _JsonHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Polku's JSON handler on the root logger; marked so a second set-up replaces it."""


def configure_logging(level: str, log_format: LogFormat = "text",
                      service: str = "polku") -> None:
    """Set up the root logger once per process (the service names itself in JSON lines).

    Text is today's `basicConfig` line, left alone when something configured logging first;
    JSON replaces an earlier JSON set-up, so the CLI's set-up gives way to the service's.
    """
    if log_format == "json":
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, _JsonHandler)]:
            root.removeHandler(handler)
        handler = _JsonHandler(sys.stderr)
        handler.setFormatter(JsonFormatter(service))
        root.addHandler(handler)
        root.setLevel(level.upper())
    else:
        logging.basicConfig(level=level.upper(), format=TEXT_FORMAT)
    # aiokafka logs every failed reconnect at ERROR while the broker is away; the readiness
    # probe and our own warnings already say so once.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def writes_json() -> bool:
    """True once this process logs JSON (configure_logging with "json")."""
    return any(isinstance(h, _JsonHandler) for h in logging.getLogger().handlers)
