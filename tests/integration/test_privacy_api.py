"""The privacy API's answers in the distributed mode's ingest (real Kafka and PostgreSQL): bad
input refused naming the field, one receipt per id, the Kafka expiry taken from the topics'
retention, which the topics Polku creates really have.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.ingest.settings import IngestSettings
from shared.settings import DatabaseSettings, KafkaSettings
from tests.ingest_app import delete_topics, ingest_client


@pytest.fixture
async def kafka(topic_names: KafkaSettings) -> AsyncIterator[KafkaSettings]:
    settings = topic_names.model_copy(update={"retention_hours": 48, "segment_hours": 2})
    yield settings
    await delete_topics(settings, [settings.touchpoints_topic])


@pytest.fixture
async def client(kafka: KafkaSettings, database_settings: DatabaseSettings
                 ) -> AsyncIterator[httpx.AsyncClient]:
    async with ingest_client(kafka, database_settings, IngestSettings()) as client:
        yield client


async def topic_config(kafka: KafkaSettings, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    return {entry["config_names"]: entry["config_value"]
            for response in described for resource in response.to_object()["resources"]
            for entry in resource["config_entries"]}


@pytest.mark.parametrize(("body", "field"), [
    ({}, "ids"),
    ({"ids": []}, "ids"),
    ({"ids": "someone"}, "ids"),
    ({"ids": [42]}, "ids"),
    ({"ids": ["x" * 201]}, "ids"),
    ({"ids": [""]}, "ids"),
])
async def test_a_bad_erasure_request_is_refused_naming_the_field(
    client: httpx.AsyncClient, body: object, field: str,
) -> None:
    answer = await client.post("/v1/erasures", json=body)
    assert answer.status_code == 422, answer.text
    assert field in answer.text


async def test_bad_ids_in_the_path_are_refused_and_an_unknown_receipt_is_404(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.delete("/v1/contacts/a%00b")
    assert answer.status_code == 422 and "contact_id" in answer.text
    answer = await client.delete(f"/v1/suppressions/{'x' * 201}")
    assert answer.status_code == 422 and "contact_id" in answer.text
    answer = await client.get("/v1/erasures/er_nothing")
    assert answer.status_code == 404 and "receipt_id" in answer.text


async def test_each_id_gets_its_receipt_expiring_with_the_topics_retention(
    client: httpx.AsyncClient, kafka: KafkaSettings,
) -> None:
    answer = await client.post("/v1/erasures", json={"ids": ["nobody-1", "nobody-2"]})
    assert answer.status_code == 200, answer.text
    receipts = answer.json()["receipts"]
    assert len(receipts) == 2 and receipts[0]["receipt_id"] != receipts[1]["receipt_id"]
    for receipt in receipts:
        assert sum(receipt["removed"].values()) == 0 and receipt["suppressed"] is True
        lives = (datetime.fromisoformat(receipt["kafka_expires_at"])
                 - datetime.fromisoformat(receipt["erased_at"]))
        # Retention, a segment, the broker's check, and ingest's list reload (5 s).
        assert lives == timedelta(hours=48 + 2, minutes=5, seconds=5)
    unlisted = await client.delete("/v1/suppressions/nobody-1")
    assert unlisted.json()["unsuppressed"] is True
    assert unlisted.json()["id_hash"] in receipts[0]["id_hashes"]
    assert (await client.delete("/v1/suppressions/nobody-1")).json()["unsuppressed"] is False
    await client.delete("/v1/suppressions/nobody-2")  # the run's other tests share the list

    config = await topic_config(kafka, kafka.touchpoints_topic)
    assert config["retention.ms"] == str(48 * 3600 * 1000)
    assert config["segment.ms"] == str(2 * 3600 * 1000)
