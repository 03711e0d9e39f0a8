"""Topics carry the replication the settings ask for, and ingest's /readyz says when they do not.

On the real single-broker cluster: a replication factor of 3 cannot be had there, which is
exactly the situation of a production setting meeting a too-small cluster.
"""

from __future__ import annotations

import logging
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.settings import IngestSettings
from services.ingest.sources import create_source
from shared.kafka import TopicsNotCreated, ensure_topics, topic_durability_problems
from shared.settings import DatabaseSettings, KafkaSettings
from tests.ingest_app import basic, delete_topics, ingest_client

TRACK = {"userId": "u-1", "event": "Demo Requested"}


async def min_insync_replicas(kafka: KafkaSettings, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"min.insync.replicas": None})])
    finally:
        await admin.close()
    ((entry,),) = [r["config_entries"] for r in response.to_object()["resources"]]
    return int(entry["config_value"])


async def topics_of(kafka: KafkaSettings) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_created_topics_carry_min_insync_replicas_from_the_settings(
    topic_names: KafkaSettings,
) -> None:
    asked = topic_names.model_copy(update={"min_insync_replicas": 2})
    await ensure_topics(asked, [asked.touchpoints_topic])
    try:
        assert await min_insync_replicas(asked, asked.touchpoints_topic) == 2
        assert await topic_durability_problems(asked, [asked.touchpoints_topic]) == []
        # Asked for more than the topic has: named.
        stricter = asked.model_copy(update={"min_insync_replicas": 3})
        assert await topic_durability_problems(stricter, [asked.touchpoints_topic]) == [
            f"{asked.touchpoints_topic} has min.insync.replicas 2; the settings ask 3"]
    finally:
        await delete_topics(asked, [asked.touchpoints_topic])


async def test_a_topic_the_cluster_cannot_replicate_enough_is_refused_with_the_reason(
    topic_names: KafkaSettings,
) -> None:
    asked = topic_names.model_copy(update={"replication_factor": 3})
    with pytest.raises(TopicsNotCreated, match="replication factor of 3"):
        await ensure_topics(asked, [asked.touchpoints_topic])
    assert asked.touchpoints_topic not in await topics_of(asked)


async def test_ingest_is_not_ready_when_its_existing_topic_has_fewer_replicas_than_asked(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await ensure_topics(topic_names, [topic_names.touchpoints_topic])  # rf 1, as locally
    asked = topic_names.model_copy(update={"replication_factor": 3})
    _, key = await create_source(engine, f"durable-{uuid.uuid4().hex[:6]}")
    try:
        with caplog.at_level(logging.ERROR, logger="polku.kafka"):
            async with ingest_client(asked, database_settings,
                                     IngestSettings(produce_timeout_s=5)) as client:
                ready = await client.get("/readyz")
                # Events are still taken: the topic exists, only less durable than asked.
                posted = await client.post("/v1/track", json=TRACK, headers=basic(key))
        assert ready.status_code == 503
        assert ready.json()["checks"]["topics"] is False
        assert ready.json()["checks"]["producer"] is True
        assert posted.status_code == 200, posted.text
        assert f"{asked.touchpoints_topic} has replication factor 1; the settings ask 3" in \
            caplog.text
    finally:
        await delete_topics(asked, [asked.touchpoints_topic])


async def test_ingest_asking_more_replicas_than_brokers_waits_not_ready_and_says_why(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    asked = topic_names.model_copy(update={"replication_factor": 3})
    _, key = await create_source(engine, f"durable-{uuid.uuid4().hex[:6]}")
    with caplog.at_level(logging.ERROR, logger="polku.ingest"):
        async with ingest_client(asked, database_settings,
                                 IngestSettings(produce_timeout_s=2)) as client:
            alive = await client.get("/healthz")
            ready = await client.get("/readyz")
            posted = await client.post("/v1/track", json=TRACK, headers=basic(key))
    assert alive.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"kafka": True, "database": True, "producer": False,
                                      "topics": False}
    assert posted.status_code == 503
    refusals = [r.getMessage() for r in caplog.records if "refused to create" in r.getMessage()]
    assert len(refusals) == 1 and "POLKU_KAFKA_REPLICATION_FACTOR" in refusals[0]
    # Nothing produced, so the broker did not create the topic with its own defaults either.
    assert asked.touchpoints_topic not in await topics_of(asked)
