"""Bearer tokens of the operator APIs (read API, delivery API): who may call them, and when a
process may serve them at all.

Each API has its own token, named by the variable that sets it, so a token is scoped to one API:
the read token (contacts, journeys) can neither read deliveries nor redeliver them, nor enable
endpoints; that takes the delivery API's admin token. Without its token an API is open, which
is only safe where nobody else can reach it, so:

- a process refuses to start on a non-loopback bind unless every API it serves has a token
  (`refuse_to_serve`, called by `polku ingest|actions|dev` before they connect anywhere);
- an open API refuses requests that name a proxy (Forwarded, X-Forwarded-For, ...): a loopback
  bind behind a reverse proxy is public. A proxy that adds none of these headers cannot be told
  from a local client, so the docs say to set the tokens whenever anything forwards to the port.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import HTTPException, Request

# Headers a reverse proxy adds; a request carrying one did not come from this machine's user.
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")
# On a public bind a token must resist guessing: 16 characters of `openssl rand -hex 32` or
# similar; a short word is refused with the rest.
MIN_PUBLIC_TOKEN_CHARS = 16


@dataclass(frozen=True, slots=True)
class ApiToken:
    """The token one API demands, and the environment variable that sets it."""

    setting: str
    value: str | None

    @property
    def is_set(self) -> bool:
        # An empty variable (`POLKU_INGEST_READ_TOKEN=`) is no token, not the empty token.
        return bool(self.value and self.value.strip())


def token_matches(authorization: str, token: str) -> bool:
    """Whether an `Authorization` header carries `token` as its bearer credential.

    Both sides are hashed before `hmac.compare_digest`, so the time taken tells nothing about
    the token: neither how much of it a guess got right nor how long it is. The scheme is
    case-insensitive (RFC 7235).
    """
    scheme, _, credential = authorization.strip().partition(" ")
    given = hashlib.sha256(credential.strip().encode("utf-8", "surrogatepass")).digest()
    expected = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(given, expected) and scheme.lower() == "bearer"


def require_bearer(request: Request, token: str | None, setting: str) -> None:
    """Refuse (401) a request without `Authorization: Bearer <token>`. With no token set the
    API is open, but only to direct clients: a request through a proxy is refused (403).

    `setting` names the environment variable holding the token, so the refusal says what to set.
    """
    if not ApiToken(setting, token).is_set:
        if any(name in request.headers for name in PROXY_HEADERS):
            raise HTTPException(403, f"this API has no token, so it answers local clients "
                                f"only, not requests through a proxy; set {setting}")
        return
    assert token is not None
    if not token_matches(request.headers.get("authorization", ""), token):
        raise HTTPException(401, f"this API needs Authorization: Bearer <{setting}>",
                            headers={"www-authenticate": "Bearer"})


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps a listener on this machine (127.0.0.0/8, ::1, localhost).
    Anything else, a host name included, counts as public."""
    name = host.strip().strip("[]").lower()
    if name in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def refuse_to_serve(host: str, tokens: Sequence[ApiToken], host_setting: str = "POLKU_HOST"
                    ) -> str | None:
    """Why a process binding `host` (set by `host_setting`) must not serve APIs protected by
    `tokens`, or None.

    On loopback the APIs may stay open (local development). Wherever several APIs share one
    process (`polku dev`), they are protected together or not at all: a read token beside an
    open delivery API would let anyone redeliver webhooks, and one value for both tokens would
    undo their scoping.
    """
    problems: list[str] = []
    if not is_loopback(host):
        missing = [t.setting for t in tokens if not t.is_set]
        if missing:
            problems.append(f"{' and '.join(missing)} must be set on a non-loopback bind "
                            f"({host_setting} is {host!r}): without a token the "
                            f"API is open to anyone who can reach it")
        short = [t.setting for t in tokens
                 if t.is_set and len((t.value or "").strip()) < MIN_PUBLIC_TOKEN_CHARS]
        if short:
            problems.append(f"{' and '.join(short)} must be at least "
                            f"{MIN_PUBLIC_TOKEN_CHARS} characters on a non-loopback bind "
                            f"(e.g. `openssl rand -hex 32`)")
    configured = [t for t in tokens if t.is_set]
    if is_loopback(host) and configured and len(configured) < len(tokens):
        unset = [t.setting for t in tokens if not t.is_set]
        problems.append(f"{', '.join(t.setting for t in configured)} is set but "
                        f"{' and '.join(unset)} is not: that API would stay open beside a "
                        f"protected one; set both (or neither, on a private machine)")
    values = [(t.value or "").strip() for t in configured]
    if len(set(values)) < len(values):
        problems.append(f"{' and '.join(t.setting for t in configured)} have the same value: "
                        f"each API needs its own token, or a read token could redeliver "
                        f"webhooks")
    return "; ".join(problems) or None
