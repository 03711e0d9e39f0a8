"""Shared set-up for benchmarks: a throwaway database and topic names on the local infra."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

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
