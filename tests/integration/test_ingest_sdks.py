"""The official Segment and RudderStack SDKs deliver to a real `polku ingest` and real Kafka.

Only the host and the write key change in the SDKs' configuration; events must arrive on the
touchpoints topic keyed by contact, in the wire format, with the device's clock skew corrected.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import rudderstack.analytics as rudderstack
import segment.analytics as segment
import sqlalchemy as sa
from segment.analytics.request import APIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.sources import create_source, revoke_source
from shared.db.tables import sources
from shared.settings import DatabaseSettings, KafkaSettings
from tests.processes import ServiceProcess, service_env
from tests.stager_harness import payloads, read_topic

# Short, so the revocation test need not wait long; docs/ingest.md states the default (5 s).
KEY_CACHE_TTL_S = 0.5


@pytest.fixture(scope="module")
def ingest_kafka(kafka_settings: KafkaSettings) -> KafkaSettings:
    tag = uuid.uuid4().hex[:8]
    return kafka_settings.model_copy(
        update={"touchpoints_topic": f"{kafka_settings.touchpoints_topic}.{tag}"})


@pytest.fixture(scope="module")
def ingest(ingest_kafka: KafkaSettings, database_settings: DatabaseSettings
           ) -> Iterator[ServiceProcess]:
    env = service_env(ingest_kafka, database_settings,
                      POLKU_INGEST_KEY_CACHE_TTL_S=str(KEY_CACHE_TTL_S))
    process = ServiceProcess("ingest", env).start()
    try:
        process.wait_status("/readyz", 200, timeout_s=60)
        yield process
    finally:
        process.kill()


@pytest.fixture(scope="module")
async def write_key(engine: AsyncEngine) -> str:
    _, key = await create_source(engine, f"web-{uuid.uuid4().hex[:6]}")
    return key


@pytest.fixture
async def other_source(engine: AsyncEngine) -> AsyncIterator[tuple[str, str]]:
    name = f"app-{uuid.uuid4().hex[:6]}"
    _, key = await create_source(engine, name)
    yield name, key


async def arrived(kafka: KafkaSettings, message_ids: set[str]) -> dict[str, tuple[bytes, dict[
        str, Any]]]:
    """The touchpoints with these messageIds: messageId -> (Kafka key, message)."""
    records = await read_topic(kafka, kafka.touchpoints_topic, expect=len(message_ids))
    found = {}
    for record, message in zip(records, payloads(records), strict=True):
        if message["messageId"] in message_ids:
            found[message["messageId"]] = (record.key, message)
    return found


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def assert_skew_corrected(message: dict[str, Any]) -> None:
    expected = at(message["receivedAt"]) - (at(message["sentAt"])
                                            - at(message["originalTimestamp"]))
    # Each of the four is rounded to the millisecond on the topic.
    assert abs(at(message["timestamp"]) - expected) <= timedelta(milliseconds=2)


async def test_segment_sdk_calls_arrive_keyed_by_contact_with_corrected_times(
    ingest: ServiceProcess, ingest_kafka: KafkaSettings, write_key: str
) -> None:
    errors: list[Exception] = []
    client = segment.Client(write_key, host=ingest.url, on_error=lambda e, _: errors.append(e),
                            upload_interval=0.1)
    when = datetime.now(UTC) - timedelta(minutes=5)
    ids = {name: f"seg-{name}-{uuid.uuid4().hex[:8]}" for name in
           ("track", "identify", "page", "screen", "group", "alias", "anon")}
    client.track("seg-alice", "Demo Requested", {"plan": "pro"}, timestamp=when,
                 context={"campaign": {"medium": "cpc"}}, message_id=ids["track"])
    client.identify("seg-alice", {"persona": "cto"}, message_id=ids["identify"])
    client.page("seg-alice", "Docs", "Pricing", {"path": "/pricing"}, message_id=ids["page"])
    client.screen("seg-alice", "App", "Home", message_id=ids["screen"])
    client.group("seg-alice", "acme", {"employees": 40}, message_id=ids["group"])
    client.alias("seg-anon-1", "seg-alice", message_id=ids["alias"])
    client.track(anonymous_id="seg-anon-2", event="Ad Clicked", message_id=ids["anon"])
    await asyncio.to_thread(client.flush)
    assert errors == []

    got = await arrived(ingest_kafka, set(ids.values()))
    assert set(got) == set(ids.values())
    key, track = got[ids["track"]]
    assert key == b"seg-alice"
    assert track["type"] == "track" and track["event"] == "Demo Requested"
    assert track["properties"] == {"plan": "pro"}
    assert track["context"]["campaign"] == {"medium": "cpc"}
    assert track["context"]["library"]["name"] == "analytics-python"
    assert at(track["originalTimestamp"]) == when.replace(
        microsecond=when.microsecond // 1000 * 1000)
    assert_skew_corrected(track)
    assert got[ids["identify"]][1]["traits"] == {"persona": "cto"}
    page = got[ids["page"]][1]
    assert (page["name"], page["properties"]) == ("Pricing", {"path": "/pricing",
                                                              "category": "Docs"})
    assert got[ids["group"]][1]["groupId"] == "acme"
    alias_key, alias = got[ids["alias"]]
    assert (alias_key, alias["previousId"]) == (b"seg-alice", "seg-anon-1")
    anon_key, anon = got[ids["anon"]]
    assert (anon_key, anon["userId"], anon["anonymousId"]) == (b"seg-anon-2", None, "seg-anon-2")
    for _, message in got.values():
        assert message["v"] == 1 and message["sourceId"] and message["receivedAt"]


async def test_a_device_clock_an_hour_fast_is_corrected_to_the_servers_clock(
    ingest: ServiceProcess, ingest_kafka: KafkaSettings, write_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class FastClock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) + timedelta(hours=1)

    # The SDK stamps sentAt from its own clock, as a device would.
    monkeypatch.setattr(segment.request, "datetime", FastClock)
    client = segment.Client(write_key, host=ingest.url, sync_mode=True)
    device_now = datetime.now(UTC) + timedelta(hours=1)
    message_id = f"skew-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(client.track, "seg-bob", "Order Completed",
                            timestamp=device_now - timedelta(seconds=30),
                            message_id=message_id)

    (_, message), = (await arrived(ingest_kafka, {message_id})).values()
    true_time = at(message["receivedAt"]) - timedelta(seconds=30)
    assert abs(at(message["timestamp"]) - true_time) < timedelta(seconds=2)
    assert at(message["originalTimestamp"]) - at(message["timestamp"]) > timedelta(minutes=59)


async def test_rudderstack_sdk_gzipped_batches_arrive(
    ingest: ServiceProcess, ingest_kafka: KafkaSettings, write_key: str
) -> None:
    errors: list[Exception] = []
    client = rudderstack.Client(write_key, host=ingest.url, upload_interval=0.1,
                                on_error=lambda e, _: errors.append(e))
    assert client.gzip  # RudderStack compresses by default
    ids = [f"rs-{i}-{uuid.uuid4().hex[:8]}" for i in range(30)]
    for i, message_id in enumerate(ids):
        client.track(f"rs-user-{i % 3}", "Guide Downloaded", {"n": i}, message_id=message_id)
    client.identify("rs-user-0", {"persona": "b2b-buyer"}, message_id=ids[0] + "-id")
    await asyncio.to_thread(client.flush)
    assert errors == []

    got = await arrived(ingest_kafka, {*ids, ids[0] + "-id"})
    assert len(got) == 31
    for i, message_id in enumerate(ids):
        key, message = got[message_id]
        assert key == f"rs-user-{i % 3}".encode()
        assert message["properties"] == {"n": i}
        assert_skew_corrected(message)
    assert got[ids[0] + "-id"][1]["traits"] == {"persona": "b2b-buyer"}


async def test_the_sdk_sees_a_401_for_an_unknown_key(ingest: ServiceProcess) -> None:
    client = segment.Client("wk_not-a-key", host=ingest.url, sync_mode=True, max_retries=0)
    with pytest.raises(APIError) as caught:
        await asyncio.to_thread(client.track, "u", "E")
    assert caught.value.status == 401
    assert caught.value.code == "unauthorized"  # the SDK reads our error body


async def test_http_errors_name_what_was_wrong(ingest: ServiceProcess, write_key: str) -> None:
    async with httpx.AsyncClient(base_url=ingest.url, auth=(write_key, "")) as client:
        bad_json = await client.post("/v1/track", content=b'{"userId": ')
        assert bad_json.status_code == 400
        assert bad_json.json()["field"] == "body"
        missing = await client.post("/v1/track", json={"userId": "u"})
        assert (missing.status_code, missing.json()["field"]) == (400, "event")
        huge = await client.post("/v1/batch", json={
            "batch": [{"type": "track", "userId": "u", "event": "E",
                       "properties": {"blob": "x" * 30_000}}] * 20})
        assert (huge.status_code, huge.json()["field"]) == (413, "body")
        anonymous = await client.post("/v1/track", json={"userId": "u", "event": "E"},
                                      auth=("wk_unknown", ""))
        assert (anonymous.status_code, anonymous.json()["field"]) == (401, "Authorization")


async def test_a_revoked_key_is_refused_within_the_cache_ttl(
    ingest: ServiceProcess, engine: AsyncEngine, other_source: tuple[str, str]
) -> None:
    name, key = other_source
    call = {"userId": "u", "event": "E"}
    async with httpx.AsyncClient(base_url=ingest.url, auth=(key, "")) as client:
        assert (await client.post("/v1/track", json=call)).status_code == 200
        assert await revoke_source(engine, name)
        await asyncio.sleep(KEY_CACHE_TTL_S + 0.2)
        assert (await client.post("/v1/track", json=call)).status_code == 401


async def test_only_a_hash_of_the_write_key_is_stored(engine: AsyncEngine, write_key: str
                                                     ) -> None:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(sources))).mappings().all()
    digest = hashlib.sha256(write_key.encode()).hexdigest()
    (row,) = [r for r in rows if r["key_hash"] == digest]
    assert write_key.startswith(row["key_prefix"]) and len(row["key_prefix"]) < len(write_key)
    assert all(write_key not in str(value) for r in rows for value in r.values())
