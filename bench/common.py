"""Shared set-up for benchmarks: a throwaway database and topic names on the local infra."""

from __future__ import annotations

import asyncio
import base64
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx

from shared.db.migrate import upgrade
from shared.settings import DatabaseSettings, KafkaSettings

# How long dropping a scratch database keeps trying before it says what it left behind.
DROP_DEADLINE_S = 60.0
_DROP_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)


async def _admin(base: DatabaseSettings) -> asyncpg.Connection:
    return await asyncpg.connect(host=base.host, port=base.port, user=base.user,
                                 password=base.password, database=base.db, timeout=10)


@asynccontextmanager
async def scratch_database(prefix: str) -> AsyncIterator[DatabaseSettings]:
    """A migrated database that exists for the duration of one benchmark.

    It is dropped afterwards even if the benchmark failed; if it cannot be, a line on stderr
    names it and how to drop it, rather than a traceback hiding the benchmark's own outcome.
    """
    base = DatabaseSettings()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    # A session of its own for each step: one held across a long benchmark may be cut by then.
    admin = await _admin(base)
    try:
        await admin.execute(f'create database "{name}"')
    finally:
        await admin.close()
    try:
        settings = base.model_copy(update={"db": name})
        await asyncio.to_thread(upgrade, settings.url)
        yield settings
    finally:
        left = await drop_database(base, name)
        if left is not None:
            print(f"bench: the scratch database {name} was left behind ({left}); drop it "
                  f"with: psql -h {base.host} -p {base.port} -U {base.user} -d {base.db} "
                  f"-c 'drop database \"{name}\"'", file=sys.stderr, flush=True)


async def drop_database(base: DatabaseSettings, name: str,
                        deadline_s: float = DROP_DEADLINE_S) -> str | None:
    """Drop database `name`, retrying with a short backoff; None once it is gone, else why it
    is still there. Never raises: it runs in clean-up, after the result that matters.

    Not `with (force)`: for a role that is not a superuser that refuses outright while an
    autovacuum worker is in the database (after a big benchmark, it usually is), because it
    may not signal a process without a role. A plain drop asks autovacuum to stop itself and
    waits up to 5 s for it. Our own sessions (a pool that was not closed) are ended first,
    after new connections are refused, so a pool that reconnects cannot hold the drop off.
    """
    started = time.monotonic()
    reason = "not tried"
    for attempt in range(1_000):
        try:
            if await _drop_once(base, name):
                return None
            reason = "it is still in use"
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            # In use past PostgreSQL's 5 s wait, the server away or restarting: try again.
            reason = f"{type(exc).__name__}: {exc}"
        backoff = _DROP_BACKOFF_S[min(attempt, len(_DROP_BACKOFF_S) - 1)]
        if time.monotonic() - started + backoff > deadline_s:
            break
        await asyncio.sleep(backoff)
    return reason


async def _drop_once(base: DatabaseSettings, name: str) -> bool:
    """One try; True when the database no longer exists."""
    admin = await _admin(base)
    try:
        try:
            await admin.execute(f'alter database "{name}" with allow_connections false')
        except asyncpg.InvalidCatalogNameError:
            return True  # already gone
        except asyncpg.InsufficientPrivilegeError:
            pass  # not its owner: the drop below says so
        await admin.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity "
            "where datname = $1 and pid <> pg_backend_pid() and usename = current_user", name)
        await admin.execute(f'drop database if exists "{name}"')
        exists = await admin.fetchval("select 1 from pg_database where datname = $1", name)
        return exists is None
    finally:
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


def memory_mb(pid: int | str = "self") -> tuple[float, float]:
    """A process's resident set now and at its peak (VmRSS, VmHWM), in MiB, from /proc."""
    found = {"VmRSS:": 0.0, "VmHWM:": 0.0}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key = line.split(None, 1)[0]
            if key in found:
                found[key] = int(line.split()[1]) / 1024
    return found["VmRSS:"], found["VmHWM:"]
