"""Runs a service's ASGI app under uvicorn; SIGTERM drains requests then runs the lifespan exit."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI
from uvicorn.config import LOGGING_CONFIG

from shared.logs import LogFormat, configure_logging


def serve(app: FastAPI, host: str, port: int, log_level: str = "info", *,
          log_format: LogFormat = "text", service: str = "polku") -> None:
    configure_logging(log_level, log_format, service)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        # uvicorn's own text handlers, or none: its records then reach the JSON handler.
        log_config=LOGGING_CONFIG if log_format == "text" else None,
        access_log=False,
        # No `server: uvicorn` header: it tells a scanner what to look for, and each header costs
        # the server two regular-expression checks per response.
        server_header=False,
        timeout_graceful_shutdown=20,
    )
