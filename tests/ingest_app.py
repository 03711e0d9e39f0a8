"""Runs the ingest app in this process against the real Kafka broker and PostgreSQL server.

The app is built by `create_app` and started by its own lifespan (engine, durable producer,
touchpoints topic, Intake), so every request goes through the same code as in production; only
the HTTP server differs: httpx's ASGI transport, or uvicorn on a thread for tests that want a URL.
Also here: reading back what reached the touchpoints topic, and ways to make PostgreSQL
unreachable for real (a port where nothing listens, a relay that can be cut).
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI

from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from shared.settings import DatabaseSettings, KafkaSettings
from tests.processes import free_port

JOURNEYS = Path(__file__).parent / "journeys"


def basic(key: str) -> dict[str, str]:
    """The Authorization header the Segment SDKs send: the write key as Basic user name."""
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def ingest_app(kafka: KafkaSettings, database: DatabaseSettings,
               settings: IngestSettings | None = None) -> FastAPI:
    return create_app(kafka, database, settings or IngestSettings(), JOURNEYS)


@asynccontextmanager
async def ingest_client(
    kafka: KafkaSettings, database: DatabaseSettings, settings: IngestSettings | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a new ingest app whose lifespan is running (and is shut down afterwards)."""
    app = ingest_app(kafka, database, settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                          base_url="http://ingest") as client,
    ):
        yield client


@contextmanager
def serving(app: FastAPI, timeout_s: float = 60) -> Iterator[str]:
    """Serve `app` with uvicorn on a thread (its own event loop, its lifespan); yield the URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on",
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, name=f"ingest-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive():
            raise AssertionError("ingest did not start; its log is in the captured output")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise AssertionError(f"ingest did not start within {timeout_s} s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def unreachable(database: DatabaseSettings) -> DatabaseSettings:
    """The same database settings with a port where nothing listens."""
    return database.model_copy(update={"port": free_port()})


class Touchpoint(NamedTuple):
    key: bytes
    message: dict[str, Any]


async def published(kafka: KafkaSettings, timeout_s: float = 20) -> list[Touchpoint]:
    """Every record on the touchpoints topic so far, in (partition, offset) order.

    Reads each partition from the beginning up to its end offset at the time of the call: ingest
    answers 2xx only once Kafka has acknowledged, so that is everything a request got accepted.
    """
    # "earliest" as well as the seek below: with the default ("latest") the consumer may reset
    # a newly assigned partition to its end after the seek, and skip what is there.
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(kafka.touchpoints_topic, p) for p in range(kafka.partitions)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {kafka.touchpoints_topic} up to {ends}")
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    records.sort(key=lambda r: (r.partition, r.offset))
    return [Touchpoint(r.key, json.loads(r.value)) for r in records
            if r.offset < ends[TopicPartition(r.topic, r.partition)]]


async def delete_topics(kafka: KafkaSettings, names: list[str]) -> None:
    """Delete test topics (those that do not exist are ignored)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


class Relay:
    """A TCP relay to a real server, which the test can cut as an outage would.

    PostgreSQL clients connect to the address they are given (unlike Kafka's, which follow the
    broker's advertised address), so relaying them is enough to take their server away.
    """

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> Relay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in self._writers:
            writer.transport.abort()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _relay(self, client_in: asyncio.StreamReader,
                     client_out: asyncio.StreamWriter) -> None:
        try:
            server_in, server_out = await asyncio.open_connection(*self._upstream)
        except OSError:
            client_out.transport.abort()
            return
        self._writers.update((client_out, server_out))
        for reader, writer in ((client_in, server_out), (server_in, client_out)):
            pipe = asyncio.create_task(self._pipe(reader, writer))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()
