"""How webhook requests reach the network: a small HTTP/1.1 client that POSTs a body and reads
the answer's status, headers and first bytes, over connections kept alive per origin.

Webhooks need none of an HTTP client's conveniences (cookies, redirects, auth, proxies,
HTTP/2), and what the client costs per request bounds deliveries per second, so the dispatcher
sends through this one: a request goes out in one write (head and body together), the answer is
read with httptools (llhttp, the C parser uvicorn uses), and sockets are plain asyncio streams.
httpx's and httpcore's general-purpose request and pool objects cost about three times as much
CPU per webhook (docs/webhooks.md, Performance).

Connections:
- kept per origin (scheme, host, port) while idle, up to `keepalive_s`; one the server closed,
  or sent something unasked on, while idle is dropped before it is used;
- a request whose reused connection turns out closed before any byte of an answer came is sent
  once more on a new connection: the server closed it while idle, so it did not take the
  request (and receivers dedupe on webhook-id in any case);
- a connection is kept only after an answer read to its end that allows keep-alive; one cut
  short (an answer longer than READ_AT_MOST, a timeout, a cancellation) is closed.
There is no limit on connections per origin here: the dispatcher's per-endpoint concurrency
bounds them. Nor are there timeouts: the caller bounds the whole attempt (attempt.py).

The transport frames the message itself: a journey's `host` header replaces the URL's, but its
content-length, transfer-encoding and connection headers (and the like) are ignored; a header
with a line break or a non-ASCII character is refused. Failures are raised as httpx's exceptions
(ConnectError, ReadError, RemoteProtocolError, InvalidURL, UnsupportedProtocol, ...) and the
egress policy's refusal as EgressRefused, so attempt.py decides on one vocabulary.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import time
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import httpcore
import httptools
import httpx

# Enough of an answer to show an operator why it failed; the rest is never read.
READ_AT_MOST = 16 * 1024
KEEPALIVE_S = 30.0
_READ_CHUNK = 64 * 1024
# Parsed request targets kept (a worker sends to a handful of URLs).
_TARGETS_KEPT = 1024
_DEFAULT_PORTS = {b"http": 80, b"https": 443}
# Framing is the transport's: these headers of a journey are not sent.
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "te",
                      "trailer", "upgrade", "expect", "proxy-connection"})
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes  # at most READ_AT_MOST bytes of it


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        try:
            if timeout is None:
                return await self._reader.read(max_bytes)
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout("read timed out") from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        try:
            self._writer.write(buffer)
            async with asyncio.timeout(timeout):
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout("write timed out") from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        self._writer.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout("TLS handshake timed out") from exc
        except (OSError, ssl.SSLError) as exc:
            await self.aclose()
            raise httpcore.ConnectError(str(exc)) from exc
        return self

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable":
            # On an idle keep-alive connection: the server closed it (or sent something
            # unasked). The stream's protocol learns that as it happens; no system call.
            reader = self._reader
            return (reader.at_eof() or reader.exception() is not None
                    or bool(getattr(reader, "_buffer", b"")) or self._writer.is_closing())
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Connects to exactly the (host, port) given; callers pass checked IP addresses."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for option in socket_options or ():
                sock.setsockopt(*option)
            if local_address:
                sock.bind((local_address, 0))
            async with asyncio.timeout(timeout):
                await asyncio.get_running_loop().sock_connect(sock, (host, port))
                reader, writer = await asyncio.open_connection(sock=sock, limit=2**16)
        except TimeoutError as exc:
            sock.close()
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc
        except OSError as exc:
            sock.close()
            raise httpcore.ConnectError(f"connecting to {host}:{port}: {exc}") from exc
        return _Stream(reader, writer)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not supported")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# httpcore's exceptions (the network streams') as httpx raises them.
_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)
_HTTPCORE_ERRORS = (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError,
                    httpcore.UnsupportedProtocol)


def _as_httpx(exc: Exception) -> Exception:
    for source, target in _EXCEPTIONS:
        if isinstance(exc, source):
            return target(str(exc))
    return exc


@dataclass(frozen=True, slots=True)
class _Target:
    """What a URL means to the transport, worked out once per URL."""

    origin: tuple[bytes, bytes, int]
    host: str  # to connect to (and to check the certificate against)
    port: int
    tls: bool
    request_line: bytes  # "POST <path?query> HTTP/1.1\r\n"
    host_header: bytes


def _target(url: str) -> _Target:
    parsed = httpx.URL(url)  # InvalidURL names what is wrong
    scheme = parsed.raw_scheme
    if scheme not in _DEFAULT_PORTS:
        raise httpx.UnsupportedProtocol(f"unsupported scheme {scheme.decode(errors='replace')!r}"
                                        " (http or https only)")
    if not parsed.raw_host:
        raise httpx.InvalidURL("the URL names no host")
    port = parsed.port or _DEFAULT_PORTS[scheme]
    return _Target(
        origin=(scheme, parsed.raw_host, port),
        host=parsed.raw_host.decode("ascii"),
        port=port,
        tls=scheme == b"https",
        request_line=b"POST " + parsed.raw_path + b" HTTP/1.1\r\n",
        host_header=parsed.netloc,
    )


def _head(target: _Target, headers: Sequence[tuple[str, str]], length: int) -> bytes:
    lines = [target.request_line]
    host = target.host_header
    for name, value in headers:
        lowered = name.lower()
        if lowered in _FRAMING:
            continue
        if not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
            raise httpx.LocalProtocolError(f"header {name!r} is not a valid HTTP header "
                                           "(names are tokens; values printable ASCII)")
        if lowered == "host":
            host = value.strip().encode("ascii")
            continue
        lines.append(b"%s: %s\r\n" % (name.encode("ascii"), value.strip().encode("ascii")))
    lines.insert(1, b"host: %s\r\n" % host)
    lines.append(b"content-length: %d\r\n\r\n" % length)
    return b"".join(lines)


class _AnswerReader:
    """httptools' callbacks for one answer: its status, headers and first READ_AT_MOST bytes.
    Informational (1xx) answers before it are skipped."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.truncated = False
        self.extra = False  # bytes after the answer: the connection is not reused

    def on_message_begin(self) -> None:
        if self.complete:
            self.extra = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, chunk: bytes) -> None:
        room = READ_AT_MOST - len(self.body)
        if len(chunk) > room:
            self.truncated = True
        self.body += chunk[:room]

    def on_message_complete(self) -> None:
        if self.complete:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.headers = {}
            self.headers_done = False
            self.body.clear()
            return
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise httpx.RemoteProtocolError(f"malformed HTTP answer: {exc}") from exc

    def ends_with_connection(self) -> bool:
        """Whether the answer's body is delimited by the end of the connection (no length)."""
        return self.headers_done and "content-length" not in self.headers \
            and "transfer-encoding" not in self.headers

    def answer(self) -> Answer:
        return Answer(self.parser.get_status_code(), self.headers, bytes(self.body))


class _Connection:
    __slots__ = ("idle_since", "stream")

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self.stream = stream
        self.idle_since = 0.0


class _Stale(Exception):
    """A reused connection was closed before any byte of the answer came."""


class HttpTransport:
    """Sends webhook POSTs; every new connection goes through `backend` (egress.py's
    GuardedBackend checks its address)."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend, *,
                 ssl_context: ssl.SSLContext | None = None, keepalive_s: float = KEEPALIVE_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._backend = backend
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._keepalive_s = keepalive_s
        self._monotonic = monotonic
        self._targets: dict[str, _Target] = {}
        self._idle: dict[tuple[bytes, bytes, int], list[_Connection]] = {}
        self._next_sweep = 0.0

    async def post(self, url: str, headers: Sequence[tuple[str, str]], body: bytes) -> Answer:
        """POST `body` to `url` with `headers`; the answer's status, headers and first bytes."""
        target = self._targets.get(url)
        if target is None:
            target = _target(url)
            if len(self._targets) >= _TARGETS_KEPT:
                self._targets.clear()
            self._targets[url] = target
        request = _head(target, headers, len(body)) + body
        connection = await self._idle_connection(target)
        if connection is not None:
            try:
                return await self._exchange(target, connection, request, reused=True)
            except _Stale:
                # The server closed its idle connections (a restart, its keep-alive limit):
                # the others it had are likely closed too.
                await self._drop_idle(target.origin)
        return await self._exchange(target, await self._connect(target), request, reused=False)

    async def aclose(self) -> None:
        for origin in list(self._idle):
            await self._drop_idle(origin)

    async def _idle_connection(self, target: _Target) -> _Connection | None:
        now = self._monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self._keepalive_s
            await self._sweep(now)
        idle = self._idle.get(target.origin)
        while idle:
            connection = idle.pop()
            if (now - connection.idle_since < self._keepalive_s
                    and not connection.stream.get_extra_info("is_readable")):
                return connection
            await connection.stream.aclose()
        return None

    async def _sweep(self, now: float) -> None:
        """Close connections idle beyond the keep-alive time, whichever origin they are of."""
        for origin, idle in list(self._idle.items()):
            fresh = [c for c in idle if now - c.idle_since < self._keepalive_s]
            for connection in idle:
                if now - connection.idle_since >= self._keepalive_s:
                    await connection.stream.aclose()
            if fresh:
                self._idle[origin] = fresh
            else:
                del self._idle[origin]

    async def _drop_idle(self, origin: tuple[bytes, bytes, int]) -> None:
        for connection in self._idle.pop(origin, []):
            await connection.stream.aclose()

    async def _connect(self, target: _Target) -> _Connection:
        try:
            stream = await self._backend.connect_tcp(target.host, target.port)
            if target.tls:
                stream = await stream.start_tls(self._ssl_context, server_hostname=target.host)
        except _HTTPCORE_ERRORS as exc:
            raise _as_httpx(exc) from exc
        return _Connection(stream)

    async def _exchange(self, target: _Target, connection: _Connection, request: bytes, *,
                        reused: bool) -> Answer:
        """Send the request and read the answer; the connection goes back to the idle ones
        only when the answer was read to its end and allows keep-alive. _Stale: `reused` and
        closed before any byte of an answer came."""
        reader = _AnswerReader()
        received = False
        kept = False
        try:
            await connection.stream.write(request)
            while not reader.complete:
                data = await connection.stream.read(_READ_CHUNK)
                if not data:
                    if reader.ends_with_connection():
                        break
                    if reused and not received:
                        raise _Stale
                    raise httpx.RemoteProtocolError(
                        "server disconnected mid-answer" if received
                        else "server disconnected without sending an answer")
                received = True
                reader.feed(data)
                if reader.truncated:
                    break
            kept = reader.complete and reader.keep_alive and not reader.truncated \
                and not reader.extra
            return reader.answer()
        except (httpcore.ReadError, httpcore.WriteError) as exc:
            if reused and not received:
                raise _Stale from exc
            raise _as_httpx(exc) from exc
        except _HTTPCORE_ERRORS as exc:
            raise _as_httpx(exc) from exc
        finally:
            if kept:
                connection.idle_since = self._monotonic()
                self._idle.setdefault(target.origin, []).append(connection)
            else:
                await connection.stream.aclose()
