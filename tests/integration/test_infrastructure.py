"""The broker and database the suite runs against are the real thing."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.kafka import durable_producer, ensure_topics
from shared.settings import KafkaSettings
from tests.unit.test_schema import differences


async def test_read_committed_consumer_sees_only_committed_transactions(
    topic_names: KafkaSettings,
) -> None:
    topic = topic_names.touchpoints_topic
    await ensure_topics(topic_names, [topic])
    producer = durable_producer(topic_names, transactional_id=f"test-{uuid.uuid4()}")
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"first", key=b"contact-1", partition=0)
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted", key=b"contact-1", partition=0)
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send_and_wait(topic, b"second", key=b"contact-1", partition=0)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=topic_names.bootstrap_servers,
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        seen: list[bytes] = []
        for _ in range(20):
            batch = await consumer.getmany(partition, timeout_ms=500)
            seen += [m.value for m in batch.get(partition, []) if m.value is not None]
            if len(seen) >= 2:
                break
        # Aborted records and transaction markers occupy offsets but are never delivered.
        assert seen == [b"first", b"second"]
        assert await consumer.end_offsets([partition]) == {partition: 6}
    finally:
        await consumer.stop()


async def test_database_is_postgresql_with_the_schema_migrated(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        version = (await conn.execute(sa.text("show server_version_num"))).scalar_one()
        tables = set(
            (
                await conn.execute(
                    sa.text("select tablename from pg_tables where schemaname = 'public'")
                )
            ).scalars()
        )
    assert int(version) >= 140000
    assert {"contact_states", "transitions", "outbox", "consumer_offsets", "sources"} <= tables


async def test_the_migrated_postgresql_schema_is_the_declared_one(engine: AsyncEngine) -> None:
    # log_records is the embedded log's, created on SQLite only (migration 0004).
    assert [d for d in await differences(engine)
            if not (d[0] == "add_table" and d[1].name == "log_records")] == []
