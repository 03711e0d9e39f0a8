"""Shared set-up for benchmarks: a throwaway database and topic names on the local infra."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx

from shared.db.migrate import upgrade
from shared.settings import DatabaseSettings, KafkaSettings


@asynccontextmanager
async def scratch_database(prefix: str) -> AsyncIterator[DatabaseSettings]:
    """A migrated database that exists for the duration of one benchmark."""
    base = DatabaseSettings()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(host=base.host, port=base.port, user=base.user,
                                  password=base.password, database=base.db)
    try:
        await admin.execute(f'create database "{name}"')
        settings = base.model_copy(update={"db": name})
        await asyncio.to_thread(upgrade, settings.url)
        yield settings
    finally:
        await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()


def scratch_topics(prefix: str, partitions: int = 6) -> KafkaSettings:
    tag = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return KafkaSettings().model_copy(
        update={
            "touchpoints_topic": f"{tag}.touchpoints",
            "transitions_topic": f"{tag}.transitions",
            "dead_letter_topic": f"{tag}.dead-letters",
            "partitions": partitions,
        }
    )


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>10,.0f}/s  ({count:,} in {seconds:.2f} s)"


def basic_auth(write_key: str) -> dict[str, str]:
    """The header an SDK sends: the write key as HTTP Basic user name, empty password."""
    return {"authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}


class KeepAliveClient:
    """A load generator light enough to leave the CPUs to the services it measures.

    httpx spends about a millisecond of CPU per request, which at 500 requests/s would take half
    of this machine from the services. These are plain HTTP/1.1 keep-alive connections,
    each carrying one request at a time, with the request written by hand.
    """

    def __init__(self, url: str, headers: dict[str, str], connections: int) -> None:
        address = httpx.URL(url)
        self.host, self.port = address.host, address.port or 80
        headers = {"host": f"{self.host}:{self.port}", "content-type": "application/json",
                   **headers}
        self.head = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
        self.connections = connections
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue())

    async def __aenter__(self) -> KeepAliveClient:
        for _ in range(self.connections):
            self.idle.put_nowait(await asyncio.open_connection(self.host, self.port))
        return self

    async def __aexit__(self, *exc: object) -> None:
        while not self.idle.empty():
            _, writer = self.idle.get_nowait()
            writer.close()

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        reader, writer = await self.idle.get()
        try:
            writer.write(b"POST %s HTTP/1.1\r\n%scontent-length: %d\r\n\r\n%s"
                         % (path.encode(), self.head, len(body), body))
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            answer = await reader.readexactly(length)
        finally:
            self.idle.put_nowait((reader, writer))
        return int(head.split(b" ", 2)[1]), answer
