"""No input makes the tracking API fail: every answer is a 2xx or a 4xx naming the field.

Schemathesis generates requests from the OpenAPI document (valid and deliberately invalid
bodies); Hypothesis adds raw bytes, arbitrary JSON and odd headers. One ingest app serves the
whole module over HTTP (uvicorn on a thread, its real lifespan), with a real write key in the test
run's database and a touchpoints topic of its own on the real broker, so valid bodies get past
authentication and are published for real.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation.modes import GenerationMode
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.app import create_app
from services.ingest.sources import create_source
from shared.settings import DatabaseSettings, KafkaSettings
from tests.ingest_app import JOURNEYS, basic, delete_topics, ingest_app, published, serving

# The tracking API only: the read API is covered against real data in tests/e2e, the privacy
# API (which would erase what the fuzzer sends) in tests/integration/test_privacy_api.py. The
# document does not depend on settings, so it is read from an app that is never started.
schema = schemathesis.openapi.from_dict(create_app(journeys_dir=JOURNEYS).openapi()).include(
    method="POST", tag="tracking"
)
schema.config.generation.update(modes=list(GenerationMode), max_examples=30)
ROUTES = ["track", "identify", "page", "screen", "group", "alias", "batch"]


@pytest.fixture(scope="module")
async def kafka(kafka_settings: KafkaSettings) -> AsyncIterator[KafkaSettings]:
    """A touchpoints topic for this module, deleted afterwards."""
    tag = uuid.uuid4().hex[:8]
    settings = kafka_settings.model_copy(
        update={"touchpoints_topic": f"{kafka_settings.touchpoints_topic}.{tag}"})
    yield settings
    await delete_topics(settings, [settings.touchpoints_topic])


@pytest.fixture(scope="module")
async def write_key(engine: AsyncEngine) -> str:
    _, key = await create_source(engine, f"fuzz-{uuid.uuid4().hex[:6]}")
    return key


@pytest.fixture(scope="module")
def ingest_url(kafka: KafkaSettings, database_settings: DatabaseSettings) -> Iterator[str]:
    with serving(ingest_app(kafka, database_settings)) as url:
        yield url


@pytest.fixture(scope="module")
def http(ingest_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ingest_url, timeout=30) as client:
        yield client


def assert_named(status: int, body: Any, allow: str | None) -> None:
    assert status < 500, body
    if status == 405:  # a method other than POST: routing answers, and says what is allowed
        assert allow == "POST"
    elif status >= 400:
        assert body["success"] is False
        assert body["field"], body
        assert body["message"].startswith(f"{body['field']}: "), body


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests_never_fail_the_server(case: Any, ingest_url: str,
                                                  write_key: str) -> None:
    # With a valid key, so that bodies get past authentication and into validation.
    response = case.call_and_validate(
        base_url=ingest_url,
        headers=basic(write_key),
        checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                response_schema_conformance],
    )
    allow = response.headers.get("allow", [None])[0]  # schemathesis: lower-case, lists
    assert_named(response.status_code, response.json(), allow)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
FIELD_NAMES = ["type", "userId", "anonymousId", "previousId", "groupId", "event", "name",
               "messageId", "properties", "traits", "context", "timestamp",
               "originalTimestamp", "sentAt", "writeKey", "batch", "category"]
CALL = st.dictionaries(st.sampled_from(FIELD_NAMES), JSON, max_size=8)

# Calls whose fields all have the right type (and carry what every call type needs), with
# arbitrary contents: these get past the type checks into the rest of validation and publishing.
TEXT = st.text(max_size=20)
ID = st.text(min_size=1, max_size=20)
OBJECT = st.dictionaries(st.text(max_size=12), JSON, max_size=5)
TIME = st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat())
WELL_TYPED_CALL = st.fixed_dictionaries(
    {"type": st.sampled_from(ROUTES[:-1]), "userId": ID, "event": ID, "groupId": ID,
     "previousId": ID},
    optional={"anonymousId": ID, "messageId": ID, "name": TEXT, "category": TEXT,
              "properties": OBJECT, "traits": OBJECT, "context": OBJECT,
              "timestamp": TIME, "originalTimestamp": TIME, "sentAt": TIME},
)

ANY_CALL = CALL | WELL_TYPED_CALL
BODY = (
    st.binary(max_size=300)
    | JSON.map(lambda v: json.dumps(v).encode())
    | ANY_CALL.map(lambda v: json.dumps(v).encode())
    | st.lists(ANY_CALL, max_size=5).map(lambda items: json.dumps({"batch": items}).encode())
    | st.text(max_size=100).map(str.encode)
)
# Stands for the module's real write key, which exists only once the fixtures have run.
VALID_KEY = "<the source's write key>"
HEADERS = st.fixed_dictionaries({}, optional={
    "Authorization": st.sampled_from([VALID_KEY, "Basic", "Basic ???", "Bearer x",
                                      basic("wk_nope")["Authorization"], "Basic Og=="]),
    "Content-Encoding": st.sampled_from(["gzip", "identity", "deflate", "GZIP"]),
    "Content-Type": st.sampled_from(["application/json", "text/plain", "x/y"]),
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(ROUTES), body=BODY, headers=HEADERS, zipped=st.booleans())
def test_arbitrary_bodies_and_headers_get_a_2xx_or_a_named_4xx(
    http: httpx.Client, write_key: str, route: str, body: bytes, headers: dict[str, str],
    zipped: bool
) -> None:
    if headers.get("Authorization") == VALID_KEY:
        headers = {**headers, **basic(write_key)}
    if zipped:
        body = gzip.compress(body)
    response = http.post(f"/v1/{route}", content=body, headers=headers)
    assert_named(response.status_code, response.json(), response.headers.get("allow"))


async def test_well_typed_calls_are_each_published_once_or_refused_naming_the_field(
    http: httpx.Client, write_key: str, kafka: KafkaSettings
) -> None:
    """With the write key, every event a 2xx counts as accepted is on the topic, exactly once."""
    before = len(await published(kafka))
    statuses: Counter[int] = Counter()
    accepted = 0

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(route=st.sampled_from(ROUTES), calls=st.lists(WELL_TYPED_CALL, min_size=1,
                                                         max_size=5))
    def post(route: str, calls: list[dict[str, Any]]) -> None:
        nonlocal accepted
        body = {"batch": calls} if route == "batch" else calls[0]
        # json.dumps writes infinite floats as Infinity, which ingest must refuse as bad JSON.
        response = http.post(f"/v1/{route}", content=json.dumps(body).encode(),
                             headers=basic(write_key))
        statuses[response.status_code] += 1
        assert response.status_code in (200, 400), response.text
        assert_named(response.status_code, response.json(), None)
        if response.status_code == 200:
            accepted += response.json()["accepted"]

    await asyncio.to_thread(post)  # Hypothesis runs synchronously; the loop stays free
    assert statuses[200] > 0, statuses
    assert len(await published(kafka)) - before == accepted
