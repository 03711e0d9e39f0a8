"""No input makes the tracking API fail: every answer is a 2xx or a 4xx naming the field.

Schemathesis generates requests from the OpenAPI document (valid and deliberately invalid
bodies); Hypothesis adds raw bytes, arbitrary JSON and odd headers. The app runs in-process with
in-memory Kafka and keys, so the whole run stays well under a minute.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
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

from .fakes import WRITE_KEY, basic, ingest_app

AUTH = basic(WRITE_KEY)
app = ingest_app()
# The tracking API only: the read API (GET) is covered against real data in tests/e2e.
schema = schemathesis.openapi.from_asgi("/openapi.json", app).include(method="POST")
schema.config.generation.update(modes=list(GenerationMode), max_examples=30)
ROUTES = ["track", "identify", "page", "screen", "group", "alias", "batch"]


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests_never_fail_the_server(case: Any) -> None:
    # With a valid key, so that bodies get past authentication and into validation.
    response = case.call_and_validate(
        headers=AUTH,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                response_schema_conformance],
    )
    allow = response.headers.get("allow", [None])[0]  # schemathesis: lower-case, lists
    assert_named(response.status_code, response.json(), allow)


def assert_named(status: int, body: Any, allow: str | None) -> None:
    assert status < 500, body
    if status == 405:  # a method other than POST: routing answers, and says what is allowed
        assert allow == "POST"
    elif status >= 400:
        assert body["success"] is False
        assert body["field"], body
        assert body["message"].startswith(f"{body['field']}: "), body


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
BODY = (
    st.binary(max_size=300)
    | JSON.map(lambda v: json.dumps(v).encode())
    | CALL.map(lambda v: json.dumps(v).encode())
    | st.lists(CALL, max_size=5).map(lambda items: json.dumps({"batch": items}).encode())
    | st.text(max_size=100).map(str.encode)
)
HEADERS = st.fixed_dictionaries({}, optional={
    "Authorization": st.sampled_from([AUTH["Authorization"], "Basic", "Basic ???", "Bearer x",
                                      basic("wk_nope")["Authorization"], "Basic Og=="]),
    "Content-Encoding": st.sampled_from(["gzip", "identity", "deflate", "GZIP"]),
    "Content-Type": st.sampled_from(["application/json", "text/plain", "x/y"]),
})


# httpx's ASGI transport runs no lifespan, so the fakes stay in place of Kafka and PostgreSQL.
loop = asyncio.new_event_loop()
client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest")


@pytest.fixture(scope="module", autouse=True)
def _close_client() -> Iterator[None]:
    yield
    loop.run_until_complete(client.aclose())
    loop.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(ROUTES), body=BODY, headers=HEADERS, zipped=st.booleans())
def test_arbitrary_bodies_and_headers_get_a_2xx_or_a_named_4xx(
    route: str, body: bytes, headers: dict[str, str], zipped: bool
) -> None:
    if zipped:
        body = gzip.compress(body)
    response = loop.run_until_complete(client.post(f"/v1/{route}", content=body, headers=headers))
    assert_named(response.status_code, response.json(), response.headers.get("allow"))
