"""The tracking API's answers: what is accepted, and what is refused with which status and field.

The app runs in-process with an in-memory key store and Kafka (tests/integration has the real
ones); everything between the HTTP request and the publisher is the real code.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from services.ingest.settings import IngestSettings

from .fakes import LIMITED_KEY, WRITE_KEY, FakeKafka, FakeSources, basic, ingest_app

AUTH = basic(WRITE_KEY)
TRACK = {"userId": "u-1", "event": "Demo Requested", "messageId": "m-1"}


@pytest.fixture
def kafka() -> FakeKafka:
    return FakeKafka()


@pytest.fixture
async def client(kafka: FakeKafka) -> AsyncIterator[httpx.AsyncClient]:
    app = ingest_app(kafka, IngestSettings(max_batch_events=10, max_batch_bytes=20_000))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
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
    client: httpx.AsyncClient, kafka: FakeKafka, kind: str
) -> None:
    call = {"userId": "u-1", "event": "E", "groupId": "g", "previousId": "p"}
    response = await client.post(f"/v1/{kind}", json=call, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "accepted": 1, "rejected": []}
    assert [m["type"] for m in kafka.messages()] == [kind]


async def test_the_write_key_may_come_in_the_body(
    client: httpx.AsyncClient, kafka: FakeKafka
) -> None:
    response = await client.post("/v1/track", json={**TRACK, "writeKey": WRITE_KEY})
    assert response.status_code == 200
    assert kafka.messages()[0]["sourceId"] == "source-1"


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
    client: httpx.AsyncClient, kafka: FakeKafka, headers: dict[str, str], body: Any, field: str
) -> None:
    response = await client.post("/v1/track", json=body, headers=headers)
    assert_refused(response, 401, field)
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert kafka.records == []


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
    client: httpx.AsyncClient, content: bytes, field: str, code: str
) -> None:
    response = await client.post("/v1/track", content=content, headers=AUTH)
    assert assert_refused(response, 400, field)["code"] == code


async def test_a_batch_accepts_the_valid_items_and_lists_the_invalid_ones(
    client: httpx.AsyncClient, kafka: FakeKafka
) -> None:
    before = metric("polku_ingest_events_rejected_total", reason="missing_field")
    batch = [
        {"type": "track", "userId": "u-1", "event": "A"},
        {"type": "track", "userId": "u-1"},
        {"type": "identify", "anonymousId": "a-1", "traits": {"plan": "pro"}},
        "nonsense",
        {"type": "page", "userId": "u-2", "timestamp": "2026-13-45T00:00:00Z"},
    ]
    response = await client.post("/v1/batch", json={"batch": batch}, headers=AUTH)
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
    assert [m["type"] for m in kafka.messages()] == ["track", "identify"]
    assert metric("polku_ingest_events_rejected_total", reason="missing_field") == before + 1


async def test_a_batch_with_no_valid_item_is_400_with_every_rejection(
    client: httpx.AsyncClient, kafka: FakeKafka
) -> None:
    response = await client.post("/v1/batch", json={"batch": [{"type": "x"}, {}]}, headers=AUTH)
    body = assert_refused(response, 400, "batch")
    assert [r["index"] for r in body["rejected"]] == [0, 1]
    assert kafka.records == []


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
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    assert_refused(await client.post("/v1/batch", json=body, headers=AUTH), 400, field)


async def test_the_batch_context_and_sent_at_reach_every_item(
    client: httpx.AsyncClient, kafka: FakeKafka
) -> None:
    body = {"batch": [{**TRACK, "type": "track", "timestamp": "2026-11-23T08:00:00Z"}],
            "context": {"library": {"name": "analytics-python"}},
            "sentAt": "2026-11-23T08:00:05Z"}
    assert (await client.post("/v1/batch", json=body, headers=AUTH)).status_code == 200
    (got,) = kafka.messages()
    assert got["context"] == {"library": {"name": "analytics-python"}}
    assert got["sentAt"] == "2026-11-23T08:00:05.000Z"


async def test_oversize_requests_are_413(client: httpx.AsyncClient) -> None:
    big_event = {**TRACK, "properties": {"blob": "x" * 33_000}}
    assert_refused(await client.post("/v1/track", json=big_event, headers=AUTH), 413, "body")
    too_many = {"batch": [{**TRACK, "type": "track"}] * 11}
    body = assert_refused(await client.post("/v1/batch", json=too_many, headers=AUTH), 413,
                          "batch")
    assert "at most 10" in body["message"]
    too_big = {"batch": [{**TRACK, "type": "track", "properties": {"b": "x" * 5000}}] * 5}
    assert_refused(await client.post("/v1/batch", json=too_big, headers=AUTH), 413, "body")


async def test_a_batch_item_over_the_event_limit_is_rejected_alone(
    kafka: FakeKafka,
) -> None:
    app = ingest_app(kafka, IngestSettings(max_event_bytes=1000))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://ingest") as client:
        batch = [{**TRACK, "type": "track"},
                 {**TRACK, "type": "track", "properties": {"b": "x" * 3000}}]
        response = await client.post("/v1/batch", json={"batch": batch}, headers=AUTH)
    assert response.status_code == 200
    assert response.json()["rejected"][0]["reason"] == "too_large"
    assert len(kafka.records) == 1


async def test_gzip_bodies_are_accepted_and_gzip_bombs_are_not(
    client: httpx.AsyncClient, kafka: FakeKafka
) -> None:
    headers = {**AUTH, "Content-Encoding": "gzip"}
    packed = gzip.compress(json.dumps({"batch": [{**TRACK, "type": "track"}]}).encode())
    assert (await client.post("/v1/batch", content=packed, headers=headers)).status_code == 200
    assert len(kafka.records) == 1
    bomb = gzip.compress(b'{"batch": [' + b" " * 10_000_000 + b"]}")
    assert len(bomb) < 20_000
    assert_refused(await client.post("/v1/batch", content=bomb, headers=headers), 413, "body")
    assert_refused(await client.post("/v1/batch", content=b"not gzip", headers=headers), 400,
                   "Content-Encoding")
    response = await client.post("/v1/batch", content=packed,
                                 headers={**AUTH, "Content-Encoding": "br"})
    assert_refused(response, 415, "Content-Encoding")


async def test_a_chunked_body_is_cut_off_at_the_limit(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"batch": ['
        for _ in range(100):  # no Content-Length: the limit is enforced while reading
            yield b'{"type": "track", "userId": "u", "event": "' + b"x" * 1000 + b'"},'
        yield b"{}]}"

    response = await client.post("/v1/batch", content=chunks(), headers=AUTH)
    assert_refused(response, 413, "body")
    assert "more than 20,000 bytes" in response.json()["message"]


async def test_when_write_keys_cannot_be_checked_the_answer_is_503(kafka: FakeKafka) -> None:
    sources = FakeSources()
    sources.down = True
    app = ingest_app(kafka, sources=sources)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://ingest") as client:
        response = await client.post("/v1/track", json=TRACK, headers=AUTH)
    assert_refused(response, 503, "Authorization")
    assert response.headers["Retry-After"] == "5"


async def test_a_source_over_its_rate_limit_gets_429_with_retry_after(
    client: httpx.AsyncClient,
) -> None:
    headers = basic(LIMITED_KEY)  # 10 events per second
    batch = {"batch": [{**TRACK, "type": "track"}] * 10}
    assert (await client.post("/v1/batch", json=batch, headers=headers)).status_code == 200
    response = await client.post("/v1/batch", json=batch, headers=headers)
    assert_refused(response, 429, "writeKey")
    assert int(response.headers["Retry-After"]) >= 1


async def test_kafka_unavailable_is_503_with_retry_after(
    client: httpx.AsyncClient, kafka: FakeKafka
) -> None:
    kafka.down = True
    before = metric("polku_ingest_events_rejected_total", reason="unavailable")
    response = await client.post("/v1/batch", json={"batch": [{**TRACK, "type": "track"}] * 3},
                                 headers=AUTH)
    assert_refused(response, 503, "kafka")
    assert response.headers["Retry-After"] == "5"
    assert metric("polku_ingest_events_rejected_total", reason="unavailable") == before + 3


async def test_metrics_count_requests_events_and_batch_sizes(
    client: httpx.AsyncClient,
) -> None:
    requests = metric("polku_ingest_requests_total", route="/v1/batch", status="200")
    accepted = metric("polku_ingest_events_accepted_total", type="track")
    batches = metric("polku_ingest_batch_events_count")
    body = {"batch": [{**TRACK, "type": "track"}] * 3}
    assert (await client.post("/v1/batch", json=body, headers=AUTH)).status_code == 200
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
