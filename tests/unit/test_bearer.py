"""Operator API tokens: compared in constant time, scoped, required where others can reach."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Request

from shared.bearer import ApiToken, is_loopback, refuse_to_serve, require_bearer, token_matches

TOKEN = "0123456789abcdef0123"
READ = ApiToken("POLKU_INGEST_READ_TOKEN", "read-0123456789abcdef")
ADMIN = ApiToken("POLKU_ACTIONS_ADMIN_TOKEN", "admin-0123456789abcdef")


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER  {TOKEN} "])
def test_the_bearer_credential_matches_whatever_the_scheme_case(header: str) -> None:
    assert token_matches(header, TOKEN)


@pytest.mark.parametrize("header", [
    "", "Bearer", "Bearer ", TOKEN, f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}",
    f"Bearer {TOKEN[:-1]}\u00e9", "Bearer \udcff", f"Bearer {TOKEN.upper()}",
])
def test_anything_but_the_exact_token_does_not_match(header: str) -> None:
    assert not token_matches(header, TOKEN)


def _api(token: str | None) -> httpx.AsyncClient:
    app = FastAPI()

    @app.get("/v1/thing")
    def thing(request: Request) -> dict[str, bool]:
        require_bearer(request, token, "POLKU_X_TOKEN")
        return {"ok": True}

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://polku")


async def test_an_empty_token_variable_is_no_token_not_the_empty_token() -> None:
    assert not ApiToken("POLKU_X_TOKEN", "").is_set and not ApiToken("POLKU_X_TOKEN", " ").is_set
    # Before, "" demanded `Authorization: Bearer ` and refused everyone else.
    assert (await _api("").get("/v1/thing")).status_code == 200


async def test_a_wrong_token_is_refused_naming_the_variable() -> None:
    api = _api(TOKEN)
    refused = await api.get("/v1/thing", headers={"authorization": "Bearer nope"})
    assert refused.status_code == 401 and "POLKU_X_TOKEN" in refused.text
    allowed = await api.get("/v1/thing", headers={"authorization": f"Bearer {TOKEN}"})
    assert allowed.status_code == 200


@pytest.mark.parametrize("header", ["x-forwarded-for", "forwarded", "x-real-ip",
                                    "x-forwarded-host"])
async def test_an_open_api_refuses_requests_through_a_proxy(header: str) -> None:
    api = _api(None)
    assert (await api.get("/v1/thing")).status_code == 200
    proxied = await api.get("/v1/thing", headers={header: "203.0.113.9"})
    assert proxied.status_code == 403 and "POLKU_X_TOKEN" in proxied.text
    # With a token the proxy is fine: the token is what protects the API.
    behind_proxy = await _api(TOKEN).get(
        "/v1/thing", headers={header: "203.0.113.9", "authorization": f"Bearer {TOKEN}"})
    assert behind_proxy.status_code == 200


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("LOCALHOST", True), ("::ffff:127.0.0.1", True),
    ("0.0.0.0", False), ("::", False), ("", False), ("10.0.0.5", False),
    ("192.168.1.2", False), ("fe80::1", False), ("polku.internal", False),
])
def test_only_loopback_binds_count_as_private(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_on_loopback_the_apis_may_stay_open() -> None:
    assert refuse_to_serve("127.0.0.1", [ApiToken(READ.setting, None)]) is None
    assert refuse_to_serve("localhost", [ApiToken(READ.setting, None),
                                         ApiToken(ADMIN.setting, None)]) is None
    assert refuse_to_serve("127.0.0.1", [READ, ADMIN]) is None
    assert refuse_to_serve("127.0.0.1", [ApiToken(READ.setting, "short")]) is None


def test_a_public_bind_needs_every_token_and_names_the_missing_ones() -> None:
    problem = refuse_to_serve("0.0.0.0", [ApiToken(READ.setting, None), ADMIN])
    assert problem is not None
    assert READ.setting in problem and ADMIN.setting not in problem and "'0.0.0.0'" in problem
    empty = refuse_to_serve("::", [ApiToken(ADMIN.setting, "  ")], "POLKU_DEV_HOST")
    assert empty is not None and ADMIN.setting in empty and "POLKU_DEV_HOST" in empty
    assert refuse_to_serve("0.0.0.0", [READ, ADMIN]) is None


def test_a_public_bind_refuses_a_guessable_token() -> None:
    problem = refuse_to_serve("10.0.0.5", [ApiToken(ADMIN.setting, "s3cret")])
    assert problem is not None and ADMIN.setting in problem and "16 characters" in problem


def test_apis_of_one_process_are_protected_together_or_not_at_all() -> None:
    half = refuse_to_serve("127.0.0.1", [READ, ApiToken(ADMIN.setting, None)])
    assert half is not None and ADMIN.setting in half
    same = refuse_to_serve("127.0.0.1", [READ, ApiToken(ADMIN.setting, READ.value)])
    assert same is not None and "same value" in same
