"""Runs a service's ASGI app under uvicorn; SIGTERM drains requests then runs the lifespan exit."""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiokafka logs every failed reconnect at ERROR while the broker is away; the readiness
    # probe and our own warnings already say so once.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def serve(app: FastAPI, host: str, port: int, log_level: str = "info") -> None:
    configure_logging(log_level)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        # No `server: uvicorn` header: it tells a scanner what to look for, and each header costs
        # the server two regular-expression checks per response.
        server_header=False,
        timeout_graceful_shutdown=20,
    )
