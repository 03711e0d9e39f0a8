"""The tracking API's answers: what is accepted, and what is refused with which status and field.

Each test starts the ingest app in-process with its real lifespan, on a touchpoints topic of its
own on the real broker, with write keys created in the test run's real database. What a request
got accepted is read back from that topic.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.settings import IngestSettings
from services.ingest.sources import create_source
from shared.settings import DatabaseSettings, KafkaSettings
from tests.ingest_app import basic, delete_topics, ingest_client, published, unreachable

SETTINGS = IngestSettings(max_batch_events=10, max_batch_bytes=20_000)
TRACK = {"userId": "u-1", "event": "Demo Requested", "messageId": "m-1"}


@dataclass(frozen=True)
class Keys:
    web: str  # no rate limit
    web_source_id: str
    limited: str  # 10 events per second


@pytest.fixture(scope="module")
async def keys(engine: AsyncEngine) -> Keys:
    tag = uuid.uuid4().hex[:6]
    web, web_key = await create_source(engine, f"web-{tag}")
    _, limited_key = await create_source(engine, f"limited-{tag}", rate_limit_per_s=10)
    return Keys(web_key, web.id, limited_key)


@pytest.fixture
def auth(keys: Keys) -> dict[str, str]:
    return basic(keys.web)


@pytest.fixture
async def kafka(topic_names: KafkaSettings) -> AsyncIterator[KafkaSettings]:
    """This test's topics; the touchpoints topic is deleted afterwards."""
    yield topic_names
    await delete_topics(topic_names, [topic_names.touchpoints_topic])


@pytest.fixture
async def client(kafka: KafkaSettings, database_settings: DatabaseSettings
                 ) -> AsyncIterator[httpx.AsyncClient]:
    async with ingest_client(kafka, database_settings, SETTINGS) as client:
        yield client


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def assert_refused(response: httpx.Response, status: int, field: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["success"] is False
    assert body["field"] == field
    assert body["message"].startswith(f"{field}: ")
    assert body["code"]
    return body


@pytest.mark.parametrize("kind", ["track", "identify", "page", "screen", "group", "alias"])
async def test_each_call_type_is_accepted_with_the_write_key_as_basic_user(
    client: httpx.AsyncClient, kafka: KafkaSettings, keys: Keys, auth: dict[str, str], kind: str
) -> None:
    call = {"userId": "u-1", "event": "E", "groupId": "g", "previousId": "p"}
    response = await client.post(f"/v1/{kind}", json=call, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "accepted": 1, "rejected": []}
    ((key, message),) = await published(kafka)
    assert key == b"u-1"  # keyed by contact, so one contact's events stay in order
    assert message["type"] == kind
    assert message["sourceId"] == keys.web_source_id


async def test_the_write_key_may_come_in_the_body(
    client: httpx.AsyncClient, kafka: KafkaSettings, keys: Keys
) -> None:
    response = await client.post("/v1/track", json={**TRACK, "writeKey": keys.web})
    assert response.status_code == 200, response.text
    ((_, message),) = await published(kafka)
    assert message["sourceId"] == keys.web_source_id
    assert message["messageId"] == "m-1"


@pytest.mark.parametrize(
    ("headers", "body", "field"),
    [
        ({}, TRACK, "writeKey"),
        (basic("wk_unknown"), TRACK, "Authorization"),
        ({}, {**TRACK, "writeKey": "wk_unknown"}, "writeKey"),
        ({}, {**TRACK, "writeKey": 7}, "writeKey"),
        ({"Authorization": "Bearer abc"}, TRACK, "Authorization"),
        ({"Authorization": "Basic !!!"}, TRACK, "Authorization"),
        ({"Authorization": "Basic Og=="}, TRACK, "Authorization"),  # ":" - no key at all
    ],
)
async def test_a_missing_unknown_or_malformed_write_key_is_401(
    client: httpx.AsyncClient, kafka: KafkaSettings, headers: dict[str, str], body: Any,
    field: str
) -> None:
    response = await client.post("/v1/track", json=body, headers=headers)
    assert_refused(response, 401, field)
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert await published(kafka) == []


@pytest.mark.parametrize(
    ("content", "field", "code"),
    [
        (b"{not json", "body", "invalid_json"),
        (b"", "body", "invalid_body"),
        (b"[1, 2]", "body", "invalid_field"),
        (b'{"userId": "u", "event": NaN}', "body", "invalid_json"),
        (b'{"userId": "u", "event": "\xff"}', "body", "invalid_json"),
        (b'{"userId": "u"}', "event", "missing_field"),
        (b'{"event": "E"}', "userId", "missing_field"),
        (b'{"userId": "u", "event": "E", "timestamp": "soon"}', "timestamp", "invalid_field"),
    ],
)
async def test_a_bad_single_call_is_400_naming_the_field(
    client: httpx.AsyncClient, auth: dict[str, str], content: bytes, field: str, code: str
) -> None:
    response = await client.post("/v1/track", content=content, headers=auth)
    assert assert_refused(response, 400, field)["code"] == code


async def test_a_batch_accepts_the_valid_items_and_lists_the_invalid_ones(
    client: httpx.AsyncClient, kafka: KafkaSettings, auth: dict[str, str]
) -> None:
    before = metric("polku_ingest_events_rejected_total", reason="missing_field")
    batch = [
        {"type": "track", "userId": "u-1", "event": "A"},
        {"type": "track", "userId": "u-1"},
        {"type": "identify", "anonymousId": "a-1", "traits": {"plan": "pro"}},
        "nonsense",
        {"type": "page", "userId": "u-2", "timestamp": "2026-13-45T00:00:00Z"},
    ]
    response = await client.post("/v1/batch", json={"batch": batch}, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "success": True,
        "accepted": 2,
        "rejected": [
            {"index": 1, "field": "event", "reason": "missing_field",
             "error": "a track call needs an event name"},
            {"index": 3, "field": "batch[3]", "reason": "invalid_field",
             "error": "must be a JSON object"},
            {"index": 4, "field": "timestamp", "reason": "invalid_field",
             "error": '"2026-13-45T00:00:00Z" is not an ISO 8601 timestamp'},
        ],
    }
    # Contacts may land on different partitions, so the topic's order is not the batch's.
    on_topic = {(key, message["type"]) for key, message in await published(kafka)}
    assert on_topic == {(b"u-1", "track"), (b"a-1", "identify")}
    assert metric("polku_ingest_events_rejected_total", reason="missing_field") == before + 1


async def test_a_batch_with_no_valid_item_is_400_with_every_rejection(
    client: httpx.AsyncClient, kafka: KafkaSettings, auth: dict[str, str]
) -> None:
    response = await client.post("/v1/batch", json={"batch": [{"type": "x"}, {}]}, headers=auth)
    body = assert_refused(response, 400, "batch")
    assert [r["index"] for r in body["rejected"]] == [0, 1]
    assert await published(kafka) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "batch"),
        ({"batch": {}}, "batch"),
        ({"batch": []}, "batch"),
        ({"batch": [TRACK], "context": []}, "context"),
        ({"batch": [TRACK], "sentAt": "tomorrow"}, "sentAt"),
    ],
)
async def test_a_malformed_batch_is_400(
    client: httpx.AsyncClient, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    assert_refused(await client.post("/v1/batch", json=body, headers=auth), 400, field)


async def test_the_batch_context_and_sent_at_reach_every_item(
    client: httpx.AsyncClient, kafka: KafkaSettings, auth: dict[str, str]
) -> None:
    body = {"batch": [{**TRACK, "type": "track", "timestamp": "2026-11-23T08:00:00Z"}],
            "context": {"library": {"name": "analytics-python"}},
            "sentAt": "2026-11-23T08:00:05Z"}
    response = await client.post("/v1/batch", json=body, headers=auth)
    assert response.status_code == 200, response.text
    ((_, got),) = await published(kafka)
    assert got["context"] == {"library": {"name": "analytics-python"}}
    assert got["sentAt"] == "2026-11-23T08:00:05.000Z"


async def test_oversize_requests_are_413(client: httpx.AsyncClient, auth: dict[str, str]
                                         ) -> None:
    big_event = {**TRACK, "properties": {"blob": "x" * 33_000}}
    assert_refused(await client.post("/v1/track", json=big_event, headers=auth), 413, "body")
    too_many = {"batch": [{**TRACK, "type": "track"}] * 11}
    body = assert_refused(await client.post("/v1/batch", json=too_many, headers=auth), 413,
                          "batch")
    assert "at most 10" in body["message"]
    too_big = {"batch": [{**TRACK, "type": "track", "properties": {"b": "x" * 5000}}] * 5}
    assert_refused(await client.post("/v1/batch", json=too_big, headers=auth), 413, "body")


async def test_a_batch_item_over_the_event_limit_is_rejected_alone(
    kafka: KafkaSettings, database_settings: DatabaseSettings, auth: dict[str, str]
) -> None:
    batch = [{**TRACK, "type": "track"},
             {**TRACK, "type": "track", "properties": {"b": "x" * 3000}}]
    async with ingest_client(kafka, database_settings,
                             IngestSettings(max_event_bytes=1000)) as client:
        response = await client.post("/v1/batch", json={"batch": batch}, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    assert [r["reason"] for r in response.json()["rejected"]] == ["too_large"]
    ((_, message),) = await published(kafka)
    assert message["properties"] == {}


async def test_gzip_bodies_are_accepted_and_gzip_bombs_are_not(
    client: httpx.AsyncClient, kafka: KafkaSettings, auth: dict[str, str]
) -> None:
    headers = {**auth, "Content-Encoding": "gzip"}
    packed = gzip.compress(json.dumps({"batch": [{**TRACK, "type": "track"}]}).encode())
    assert (await client.post("/v1/batch", content=packed, headers=headers)).status_code == 200
    assert len(await published(kafka)) == 1
    bomb = gzip.compress(b'{"batch": [' + b" " * 10_000_000 + b"]}")
    assert len(bomb) < 20_000
    assert_refused(await client.post("/v1/batch", content=bomb, headers=headers), 413, "body")
    assert_refused(await client.post("/v1/batch", content=b"not gzip", headers=headers), 400,
                   "Content-Encoding")
    response = await client.post("/v1/batch", content=packed,
                                 headers={**auth, "Content-Encoding": "br"})
    assert_refused(response, 415, "Content-Encoding")
    assert len(await published(kafka)) == 1


async def test_a_chunked_body_is_cut_off_at_the_limit(client: httpx.AsyncClient,
                                                      auth: dict[str, str]) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"batch": ['
        for _ in range(100):  # no Content-Length: the limit is enforced while reading
            yield b'{"type": "track", "userId": "u", "event": "' + b"x" * 1000 + b'"},'
        yield b"{}]}"

    response = await client.post("/v1/batch", content=chunks(), headers=auth)
    assert_refused(response, 413, "body")
    assert "more than 20,000 bytes" in response.json()["message"]


async def test_when_write_keys_cannot_be_checked_the_answer_is_503(
    kafka: KafkaSettings, database_settings: DatabaseSettings, auth: dict[str, str]
) -> None:
    """The key store is PostgreSQL at a port where nothing listens."""
    async with ingest_client(kafka, unreachable(database_settings)) as client:
        response = await client.post("/v1/track", json=TRACK, headers=auth)
    assert_refused(response, 503, "Authorization")
    assert response.headers["Retry-After"] == "5"


async def test_a_source_over_its_rate_limit_gets_429_with_retry_after(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    headers = basic(keys.limited)  # 10 events per second
    batch = {"batch": [{**TRACK, "type": "track"}] * 10}
    assert (await client.post("/v1/batch", json=batch, headers=headers)).status_code == 200
    response = await client.post("/v1/batch", json=batch, headers=headers)
    assert_refused(response, 429, "writeKey")
    assert int(response.headers["Retry-After"]) >= 1


async def test_when_kafka_does_not_acknowledge_in_time_the_answer_is_503_with_retry_after(
    kafka: KafkaSettings, database_settings: DatabaseSettings, auth: dict[str, str]
) -> None:
    """A 1 ms produce deadline, shorter than the producer's linger: the real broker cannot
    acknowledge in time. A broker outage ends the same way, by this deadline; the app cannot
    start without a broker, so tests/faults/test_ingest_broker_down.py stops the real one."""
    before = metric("polku_ingest_events_rejected_total", reason="unavailable")
    async with ingest_client(kafka, database_settings,
                             IngestSettings(produce_timeout_s=0.001)) as client:
        response = await client.post(
            "/v1/batch", json={"batch": [{**TRACK, "type": "track"}] * 3}, headers=auth
        )
    body = assert_refused(response, 503, "kafka")
    assert "retry" in body["message"]
    assert response.headers["Retry-After"] == "5"
    assert metric("polku_ingest_events_rejected_total", reason="unavailable") == before + 3


async def test_metrics_count_requests_events_and_batch_sizes(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    requests = metric("polku_ingest_requests_total", route="/v1/batch", status="200")
    accepted = metric("polku_ingest_events_accepted_total", type="track")
    batches = metric("polku_ingest_batch_events_count")
    body = {"batch": [{**TRACK, "type": "track"}] * 3}
    assert (await client.post("/v1/batch", json=body, headers=auth)).status_code == 200
    assert metric("polku_ingest_requests_total", route="/v1/batch", status="200") == requests + 1
    assert metric("polku_ingest_events_accepted_total", type="track") == accepted + 3
    assert metric("polku_ingest_batch_events_count") == batches + 1
    exposition = (await client.get("/metrics")).text
    assert "polku_ingest_produce_seconds" in exposition
    assert "u-1" not in exposition  # no contact ids in labels


async def test_the_api_is_documented_at_docs(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    for kind in ("track", "identify", "page", "screen", "group", "alias", "batch"):
        operation = spec["paths"][f"/v1/{kind}"]["post"]
        assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert {"200", "400", "401", "413", "429", "503"} <= set(operation["responses"])
    assert "TrackCall" in spec["components"]["schemas"]


def padded_track(size: int, message_id: str) -> dict[str, Any]:
    """A batch item whose JSON (compact, as the limit measures it) is exactly `size` bytes."""
    shell = {"type": "track", "userId": "u-1", "event": "Big", "messageId": message_id,
             "properties": {"blob": ""}}
    padding = size - len(json.dumps(shell, separators=(",", ":")))
    return {**shell, "properties": {"blob": "x" * padding}}


async def test_a_batch_item_of_exactly_32768_bytes_is_accepted_and_one_byte_more_is_not(
    kafka: KafkaSettings, database_settings: DatabaseSettings, auth: dict[str, str]
) -> None:
    batch = [padded_track(32_768, "m-at-limit"), padded_track(32_769, "m-over"),
             padded_track(32_768 + 1024, "m-1k-over")]
    async with ingest_client(kafka, database_settings, IngestSettings()) as client:
        response = await client.post("/v1/batch", json={"batch": batch}, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    rejected = response.json()["rejected"]
    assert [(r["index"], r["field"], r["reason"]) for r in rejected] == [
        (1, "batch[1]", "too_large"), (2, "batch[2]", "too_large")]
    assert "32,769 bytes" in rejected[0]["error"] and "at most 32,768" in rejected[0]["error"]
    assert [m["messageId"] for _, m in await published(kafka)] == ["m-at-limit"]


async def test_a_far_future_timestamp_is_stored_as_received_at_and_flagged(
    client: httpx.AsyncClient, kafka: KafkaSettings, auth: dict[str, str]
) -> None:
    call = {**TRACK, "timestamp": "9999-12-31T00:00:00Z"}
    response = await client.post("/v1/track", json=call, headers=auth)
    assert response.status_code == 200, response.text
    ((_, message),) = await published(kafka)
    assert message["timestamp"] == message["receivedAt"]
    assert message["timestampAdjusted"] == {"reason": "future",
                                            "original": "9999-12-31T00:00:00.000Z"}
    assert message["originalTimestamp"] == "9999-12-31T00:00:00.000Z"


@pytest.mark.parametrize("moment", ["1970-01-01T00:00:00Z", "1999-12-31T23:59:59Z"])
async def test_a_timestamp_before_2000_is_400_naming_timestamp(
    client: httpx.AsyncClient, kafka: KafkaSettings, auth: dict[str, str], moment: str
) -> None:
    response = await client.post("/v1/track", json={**TRACK, "timestamp": moment}, headers=auth)
    assert "2000-01-01" in assert_refused(response, 400, "timestamp")["message"]
    # In a batch the item is rejected alone, naming the field, and the valid item is kept.
    batch = [{**TRACK, "type": "track", "messageId": "m-old", "timestamp": moment},
             {**TRACK, "type": "track", "messageId": "m-ok"}]
    response = await client.post("/v1/batch", json={"batch": batch}, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    assert [(r["index"], r["field"], r["reason"]) for r in response.json()["rejected"]] == [
        (0, "timestamp", "invalid_field")]
    assert [m["messageId"] for _, m in await published(kafka)] == ["m-ok"]
