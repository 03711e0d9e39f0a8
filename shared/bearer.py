"""Optional bearer-token protection for the operator APIs (read API, delivery API)."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request


def require_bearer(request: Request, token: str | None, setting: str) -> None:
    """Refuse (401) a request without `Authorization: Bearer <token>`; no token, no check.

    `setting` names the environment variable holding the token, so the refusal says what to set.
    """
    if token is None:
        return
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise HTTPException(401, f"this API needs Authorization: Bearer <{setting}>",
                            headers={"www-authenticate": "Bearer"})
