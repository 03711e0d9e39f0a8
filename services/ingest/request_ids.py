"""X-Request-ID on every ingest request: the client's own when it is sane, else a new one.

The id is answered in the response's `X-Request-ID` header and set in `shared.logs.REQUEST_ID`
while the request is served, so each JSON log line of the request carries it: a client that
reports a failed request by its id leads an operator to what ingest logged about it.

Sane is 1 to 128 characters of letters, digits and `. _ : + / = -` (UUIDs, ULIDs, base64, a
proxy's `trace:span`); anything else, such as a header value with spaces or quotes that would
garble a log, is replaced rather than refused: the request is still served.
"""

from __future__ import annotations

import os
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logs import REQUEST_ID

HEADER = b"x-request-id"
SANE = re.compile(rb"[A-Za-z0-9._:+/=-]{1,128}")


def request_id_of(given: bytes | None) -> str:
    """The client's id if it is sane, else 32 random hex digits."""
    if given is not None and SANE.fullmatch(given):
        return given.decode("ascii")
    return os.urandom(16).hex()


class RequestIds:
    """ASGI middleware: plain ASGI, like RequestMetrics, so it adds no task or body copy."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == HEADER), None)
        request_id = request_id_of(given)
        header = (HEADER, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
