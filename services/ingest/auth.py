"""Who is sending: the write key from HTTP Basic (Segment's way) or `writeKey` in the body."""

from __future__ import annotations

import base64
import binascii
import functools
from typing import Any

from services.ingest.errors import RateLimited, Unauthorized, Unavailable
from services.ingest.sources import LookupsExhausted, Source, SourceLookup, SourcesUnavailable


def key_from_header(authorization: str | None) -> str | None:
    """The write key in an `Authorization: Basic` header (user part; password ignored).

    None when there is no header, so the body's writeKey may be used instead.
    """
    if authorization is None:
        return None
    return _basic_key(authorization)


# A sender repeats the same header on every request: decoding it once saves a base64 decode per
# request. Refusals raise, so only headers that carry a key are kept.
@functools.lru_cache(maxsize=1024)
def _basic_key(authorization: str) -> str:
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise Unauthorized("Authorization", "use HTTP Basic with the write key as the user name")
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("Authorization", "the Basic credentials are not valid base64 of "
                           "'writeKey:'") from None
    user, _, password = decoded.partition(":")
    key = user or password  # some clients put the key in the password instead
    if not key:
        raise Unauthorized("Authorization", "the Basic credentials carry no write key")
    return key


def key_from_body(body: dict[str, Any], events: int) -> str:
    key = body.get("writeKey")
    if key is None:
        raise Unauthorized("writeKey", "no write key: send it as the HTTP Basic user name or as "
                           "writeKey in the body", events=events)
    if not isinstance(key, str) or not key:
        raise Unauthorized("writeKey", "must be a non-empty string", events=events)
    return key


async def authenticate(
    sources: SourceLookup, key: str, field: str, retry_after_s: int, events: int = 1
) -> Source:
    try:
        source = await sources.find(key)
    except SourcesUnavailable:
        raise Unavailable(field, "write keys cannot be checked right now (database "
                          "unavailable); retry later", retry_after_s=retry_after_s,
                          events=events) from None
    except LookupsExhausted:
        # Not 401: the key may be valid and new; the SDKs retry a 429 (and drop a 401).
        raise RateLimited(field, "too many unknown write keys are being tried; retry in a "
                          "second", retry_after_s=1, events=events) from None
    if source is None:
        raise Unauthorized(field, "unknown or revoked write key", events=events)
    return source
