"""Fixtures for the real Kafka broker and PostgreSQL server that `make infra` starts.

Every test run gets its own database and topic names, so runs never see each other's data.
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import drop_database
from shared.db.engine import make_engine
from shared.db.migrate import upgrade
from shared.kafka import broker_reachable
from shared.settings import DatabaseSettings, KafkaSettings
from tests.actions_harness import Receiver, clear_deliveries


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def kafka_settings(run_id: str) -> Iterator[KafkaSettings]:
    """Topic names of this run (every topic a test creates starts with `test-<run_id>`); the
    run's topics are deleted at its end, so the broker does not fill up with old runs."""
    base = KafkaSettings()
    if not asyncio.run(broker_reachable(base, timeout_s=10)):
        pytest.fail(f"no Kafka broker at {base.bootstrap_servers}: run `make infra` first")
    yield base.model_copy(
        update={
            "touchpoints_topic": f"test-{run_id}.touchpoints",
            "transitions_topic": f"test-{run_id}.transitions",
            "dead_letter_topic": f"test-{run_id}.dead-letters",
            "partitions": 3,
        }
    )
    asyncio.run(_delete_topics_of_run(base, f"test-{run_id}"))


async def _delete_topics_of_run(kafka: KafkaSettings, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


@pytest.fixture
def topic_names(kafka_settings: KafkaSettings, run_id: str) -> KafkaSettings:
    """Kafka settings with topic names unique to one test."""
    tag = f"{run_id}-{uuid.uuid4().hex[:8]}"
    return kafka_settings.model_copy(
        update={
            "touchpoints_topic": f"test-{tag}.touchpoints",
            "transitions_topic": f"test-{tag}.transitions",
            "dead_letter_topic": f"test-{tag}.dead-letters",
        }
    )


async def _admin(settings: DatabaseSettings, database: str = "postgres") -> asyncpg.Connection:
    return await asyncpg.connect(
        host=settings.host, port=settings.port, user=settings.user,
        password=settings.password, database=database, timeout=10,
    )


@contextmanager
def _fresh_database(name: str) -> Iterator[DatabaseSettings]:
    """A database migrated to head for as long as the block runs, dropped afterwards."""
    base = DatabaseSettings()

    async def run(statement: str) -> None:
        conn = await _admin(base, base.db)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    try:
        asyncio.run(run(f'create database "{name}"'))
    except OSError as exc:
        pytest.fail(f"no PostgreSQL at {base.host}:{base.port} ({exc}): run `make infra` first")
    settings = base.model_copy(update={"db": name})
    upgrade(settings.url)
    try:
        yield settings
    finally:
        # bench.common's drop: `with (force)` is refused while autovacuum works in the database.
        left = asyncio.run(drop_database(base, name))
        if left is not None:
            warnings.warn(f"test database {name} left behind: {left}", stacklevel=1)


@pytest.fixture(scope="session")
def database_settings(run_id: str) -> Iterator[DatabaseSettings]:
    """A fresh database for this run, migrated to head, dropped afterwards."""
    with _fresh_database(f"polku_test_{run_id}") as settings:
        yield settings


@pytest.fixture
def own_database(run_id: str) -> Iterator[DatabaseSettings]:
    """A database of one test's own, for a stager on the real clock: in the run's shared
    database it would fire the timers other tests' contacts left due."""
    with _fresh_database(f"polku_test_{run_id}_{uuid.uuid4().hex[:6]}") as settings:
        yield settings


@pytest.fixture(scope="session")
async def engine(database_settings: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_settings)
    yield engine
    await engine.dispose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server on 127.0.0.1 recording what webhooks it receives."""
    with Receiver() as running:
        yield running


@pytest.fixture
async def no_earlier_deliveries(engine: AsyncEngine) -> None:
    """Webhook deliveries other tests left in the run's database are removed first."""
    await clear_deliveries(engine)
