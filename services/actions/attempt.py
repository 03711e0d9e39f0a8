"""One delivery attempt: POST the signed body once and say what came of it.

Only a 2xx answer is a success. Redirects are not followed (a 3xx is a failed attempt: a
redirect could lead anywhere, and the signature names the original URL's receiver). The whole
attempt, connecting and reading the answer included, is bounded by the attempt timeout. The
request goes straight to the transport: no cookie jar carries one receiver's cookies into the
next request, no proxy from the environment, no redirect handling to switch off.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from services.actions.egress import EgressRefused
from services.actions.retry import parse_retry_after
from services.actions.signing import sign_headers

USER_AGENT = "Polku-Webhooks/0.1"
# Enough of an answer to show an operator why it failed; the rest is never read.
_READ_AT_MOST = 16 * 1024


class Result(enum.Enum):
    DELIVERED = "delivered"
    FAILED = "failed"  # worth retrying: non-2xx, timeout, connection trouble
    GONE = "gone"  # 410: the receiver says this endpoint no longer exists
    REFUSED = "refused"  # never retried: the egress policy or an unusable URL


@dataclass(frozen=True)
class Outcome:
    result: Result
    http_status: int | None = None
    error: str | None = None
    retry_after_s: float | None = None
    seconds: float = 0.0
    # What kind of failure, safe to log: a fixed word or an exception class, never the text of
    # `error` (which quotes the receiver's answer, and an httpx error may quote the URL).
    kind: str | None = None

    @property
    def endpoint_failure(self) -> bool:
        """Whether it says the endpoint is unwell (counts towards opening its breaker)."""
        return self.result is Result.FAILED


async def attempt(
    transport: httpx.AsyncBaseTransport,
    *,
    url: str,
    webhook_id: str,
    body: bytes,
    keys: Sequence[bytes],
    timestamp: int,
    extra_headers: Mapping[str, str],
    timeout_s: float,
    excerpt_chars: int = 1000,
) -> Outcome:
    headers = dict(extra_headers)
    headers.update({"content-type": "application/json", "user-agent": USER_AGENT,
                    "accept": "*/*"})
    headers.update(sign_headers(keys, webhook_id, timestamp, body))
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            request = httpx.Request("POST", url, content=body, headers=headers, extensions={
                "timeout": {"connect": timeout_s, "read": timeout_s, "write": timeout_s,
                            "pool": timeout_s},
            })
            response = await transport.handle_async_request(request)
            try:
                answer = await _read_some(response)
            finally:
                await response.aclose()
    except EgressRefused as exc:
        return Outcome(Result.REFUSED, error=str(exc), seconds=time.perf_counter() - started,
                       kind="egress_refused")
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        return Outcome(Result.REFUSED, error=f"unusable URL: {exc}",
                       seconds=time.perf_counter() - started, kind="unusable_url")
    except (TimeoutError, httpx.TimeoutException):
        return Outcome(Result.FAILED, error=f"no answer within {timeout_s:g} s",
                       seconds=time.perf_counter() - started, kind="timeout")
    except httpx.HTTPError as exc:
        return Outcome(Result.FAILED, error=f"{type(exc).__name__}: {exc}"[:excerpt_chars],
                       seconds=time.perf_counter() - started, kind=type(exc).__name__)
    seconds = time.perf_counter() - started
    status = response.status_code
    if 200 <= status < 300:
        return Outcome(Result.DELIVERED, status, seconds=seconds)
    # A receiver's body may hold any byte; PostgreSQL's text refuses NUL, so it is replaced.
    excerpt = answer.decode("utf-8", errors="replace").replace("\x00", "\ufffd")[:excerpt_chars]
    error = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
    kind = "http_status"
    if status in (301, 302, 303, 307, 308) and "location" in response.headers:
        error = f"HTTP {status} redirect to {response.headers['location']} (not followed)"
        kind = "redirect"
    if status == 410:
        return Outcome(Result.GONE, status, error, seconds=seconds, kind=kind)
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
    return Outcome(Result.FAILED, status, error, retry_after, seconds, kind)


async def _read_some(response: httpx.Response) -> bytes:
    data = bytearray()
    assert isinstance(response.stream, httpx.AsyncByteStream)
    async for chunk in response.stream:
        data.extend(chunk)
        if len(data) >= _READ_AT_MOST:
            break
    return bytes(data)
