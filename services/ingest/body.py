"""Reads a tracking call's body: size limits enforced while reading, gzip, strict JSON."""

from __future__ import annotations

import zlib
from typing import Any

from pydantic_core import from_json
from starlette.requests import Request

from services.ingest.errors import BadRequest, PayloadTooLarge, UnsupportedEncoding


async def read_json(request: Request, limit: int) -> Any:
    """The parsed body, refusing anything over `limit` bytes (after decompression)."""
    return parse_json(await read_body(request, limit))


async def read_body(request: Request, limit: int) -> bytes:
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip"):
        raise UnsupportedEncoding(
            "Content-Encoding", f"{encoding!r} is not supported; send identity or gzip"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    # Counted while reading too: chunked bodies declare no length, and a declared one may lie.
    # The ASGI messages are read here rather than through request.stream(), an async generator
    # that costs more than the rest of reading a small body.
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            raise BadRequest("body", "the client closed the connection before the body was "
                             "sent", reason="invalid_body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit, at_least=True)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if encoding == "gzip":
        body = _gunzip(body, limit)
    return body


def parse_json(body: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, no lone surrogates, at most 200 levels deep.

    pydantic-core's parser is faster than the stdlib's and refuses what PostgreSQL and other
    JSON parsers downstream would choke on.
    """
    if not body:
        raise BadRequest("body", "is empty; send a JSON object", reason="invalid_body")
    try:
        return from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        raise BadRequest("body", f"is not valid JSON: {exc}", reason="invalid_json") from None


def _gunzip(body: bytes, limit: int) -> bytes:
    # Decompress at most limit+1 bytes, so a small gzip bomb costs nothing.
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise BadRequest("Content-Encoding", "says gzip but the body is not valid gzip",
                         reason="invalid_body") from None
    if len(data) > limit:
        raise _too_large(len(data), limit, at_least=True, unpacked=True)
    if not inflater.eof:
        raise BadRequest("Content-Encoding", "says gzip but the gzip stream is truncated",
                         reason="invalid_body")
    return data


def _too_large(size: int, limit: int, *, at_least: bool = False,
               unpacked: bool = False) -> PayloadTooLarge:
    what = "uncompressed body" if unpacked else "body"
    amount = f"more than {limit:,}" if at_least else f"{size:,}"
    return PayloadTooLarge("body", f"the {what} is {amount} bytes; at most {limit:,} bytes are "
                           "allowed for this endpoint")
