"""One delivery attempt: POST the signed body once and say what came of it.

Only a 2xx answer is a success. Redirects are not followed (a 3xx is a failed attempt: a
redirect could lead anywhere, and the signature names the original URL's receiver). The whole
attempt, connecting and reading the answer included, is bounded by the attempt timeout. The
request goes straight to the transport (transport.py): no cookie jar carries one receiver's
cookies into the next request, no proxy from the environment, no redirect handling to switch
off.
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
from services.actions.transport import HttpTransport

USER_AGENT = "Polku-Webhooks/0.1"
_FIXED_HEADERS = {"content-type": "application/json", "user-agent": USER_AGENT, "accept": "*/*"}


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
    transport: HttpTransport,
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
    ours = sign_headers(keys, webhook_id, timestamp, body)
    ours.update(_FIXED_HEADERS)
    # A journey's extra headers never replace ours (the parser refuses most such names).
    headers = [(name, value) for name, value in extra_headers.items()
               if name.lower() not in ours]
    headers.extend(ours.items())
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            answer = await transport.post(url, headers, body)
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
    status = answer.status
    if 200 <= status < 300:
        return Outcome(Result.DELIVERED, status, seconds=seconds)
    # A receiver's body may hold any byte; PostgreSQL's text refuses NUL, so it is replaced.
    excerpt = answer.body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    excerpt = excerpt[:excerpt_chars]
    error = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
    kind = "http_status"
    if status in (301, 302, 303, 307, 308) and "location" in answer.headers:
        error = f"HTTP {status} redirect to {answer.headers['location']} (not followed)"
        kind = "redirect"
    if status == 410:
        return Outcome(Result.GONE, status, error, seconds=seconds, kind=kind)
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(answer.headers.get("retry-after"), datetime.now(UTC))
    return Outcome(Result.FAILED, status, error, retry_after, seconds, kind)
