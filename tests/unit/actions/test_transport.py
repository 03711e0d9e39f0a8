"""The webhook transport against a real socket: one write per request, kept-alive connections,
and whatever a receiver answers (chunked, informational, unbounded, long, malformed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from services.actions.transport import READ_AT_MOST, AsyncioBackend, HttpTransport

NO_CONTENT = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"


@dataclass
class Server:
    """A raw HTTP/1.1 server: `answer(request_number)` gives the bytes to send back, and
    whether to close the connection after them."""

    answer: Callable[[int], tuple[bytes, bool]]
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                self.requests.append(head + await reader.readexactly(length))
                data, close = self.answer(len(self.requests))
                writer.write(data)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(answer: Callable[[int], tuple[bytes, bool]]) -> AsyncIterator[Server]:
    server = Server(answer)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    server.url = f"http://127.0.0.1:{port}/hooks/x?token=1"
    async with listener:
        yield server


@asynccontextmanager
async def transport() -> AsyncIterator[HttpTransport]:
    sending = HttpTransport(AsyncioBackend())
    try:
        yield sending
    finally:
        await sending.aclose()


def always(data: bytes, close: bool = False) -> Callable[[int], tuple[bytes, bool]]:
    return lambda n: (data, close)


async def test_a_post_carries_the_body_and_headers_and_connections_are_kept_alive() -> None:
    async with serving(always(NO_CONTENT)) as server, transport() as sending:
        for i in range(3):
            answer = await sending.post(server.url, [("x-team", "sales")], b'{"n":%d}' % i)
            assert answer.status == 204
    assert server.connections == 1
    head, body = server.requests[2].split(b"\r\n\r\n")
    assert head.startswith(b"POST /hooks/x?token=1 HTTP/1.1\r\n")
    lines = head.split(b"\r\n")
    assert f"host: {server.url.split('/')[2]}".encode() in lines
    assert b"x-team: sales" in lines and b"content-length: 7" in lines
    assert body == b'{"n":2}'


async def test_a_connection_the_receiver_closed_while_idle_is_not_used_again() -> None:
    # Every answer closes the connection after it, without saying so beforehand.
    async with serving(always(NO_CONTENT, close=True)) as server, transport() as sending:
        for _ in range(3):
            assert (await sending.post(server.url, [], b"{}")).status == 204
            await asyncio.sleep(0.05)  # the close reaches the idle connection
    assert len(server.requests) == 3  # none was sent on a closed connection
    assert server.connections == 3


async def test_a_request_that_meets_a_connection_closing_as_it_was_sent_goes_again() -> None:
    # The receiver drops each connection when its second request comes, without answering
    # (its keep-alive ran out just then): the request is sent once more on a new connection.
    served: list[int] = []

    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for n in range(2):
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(int(head.split(b"content-length: ")[1].split(b"\r\n")[0]))
            served.append(n)
            if n == 0:
                writer.write(NO_CONTENT)
                await writer.drain()
        writer.close()

    listener = await asyncio.start_server(answer_once, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}/"
    async with listener, transport() as sending:
        for _ in range(3):
            assert (await sending.post(url, [], b"{}")).status == 204
    assert served == [0, 1, 0, 1, 0]  # three answered, two dropped and sent again


async def test_connection_close_is_honoured() -> None:
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
    async with serving(always(answer, close=True)) as server, transport() as sending:
        for _ in range(2):
            assert (await sending.post(server.url, [], b"{}")).body == b"ok"
    assert server.connections == 2


async def test_chunked_answers_and_informational_ones_before_them_are_read() -> None:
    answer = (b"HTTP/1.1 100 Continue\r\n\r\n"
              b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n"
              b"Retry-After: 7\r\n\r\n5\r\nbusy \r\n3\r\nnow\r\n0\r\n\r\n")
    async with serving(always(answer)) as server, transport() as sending:
        first = await sending.post(server.url, [], b"{}")
        second = await sending.post(server.url, [], b"{}")
    assert (first.status, first.body, first.headers["retry-after"]) == (503, b"busy now", "7")
    assert second.status == 503
    assert server.connections == 1


async def test_an_answer_without_a_length_ends_with_the_connection() -> None:
    async with serving(always(b"HTTP/1.1 200 OK\r\n\r\nall of it", close=True)) as server, \
            transport() as sending:
        answer = await sending.post(server.url, [], b"{}")
    assert (answer.status, answer.body) == (200, b"all of it")


async def test_a_long_answer_is_cut_at_the_limit_and_its_connection_not_reused() -> None:
    big = b"x" * (READ_AT_MOST * 4)
    answer = b"HTTP/1.1 500 Oops\r\ncontent-length: %d\r\n\r\n%s" % (len(big), big)
    async with serving(always(answer)) as server, transport() as sending:
        first = await sending.post(server.url, [], b"{}")
        await sending.post(server.url, [], b"{}")
    assert first.status == 500 and first.body == big[:READ_AT_MOST]
    assert server.connections == 2


@pytest.mark.parametrize("garbage", [b"SMTP ready\r\n\r\n", b"HTTP/1.1 2000 Huh\r\n\r\n"])
async def test_a_malformed_answer_is_a_protocol_error(garbage: bytes) -> None:
    async with serving(always(garbage, close=True)) as server, transport() as sending:
        with pytest.raises(httpx.RemoteProtocolError):
            await sending.post(server.url, [], b"{}")


async def test_a_receiver_that_hangs_up_without_answering_is_a_protocol_error() -> None:
    async with serving(always(b"", close=True)) as server, transport() as sending:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending an answer"):
            await sending.post(server.url, [], b"{}")


async def test_the_transport_frames_the_message_and_refuses_header_injection() -> None:
    async with serving(always(NO_CONTENT)) as server, transport() as sending:
        await sending.post(server.url, [("Content-Length", "999"), ("Transfer-Encoding",
                                        "chunked"), ("Host", "crm.example")], b"{}")
        with pytest.raises(httpx.LocalProtocolError):
            await sending.post(server.url, [("x-evil", "a\r\nx-injected: 1")], b"{}")
        with pytest.raises(httpx.LocalProtocolError):
            await sending.post(server.url, [("bad name", "1")], b"{}")
    lines = server.requests[0].split(b"\r\n\r\n")[0].split(b"\r\n")
    assert b"host: crm.example" in lines
    assert [line for line in lines if line.lower().startswith(b"content-length")] == \
        [b"content-length: 2"]
    assert not any(line.lower().startswith(b"transfer-encoding") for line in lines)
    assert len(server.requests) == 1  # the refused ones never left


@pytest.mark.parametrize(("url", "error"), [
    ("ftp://example.com/hook", httpx.UnsupportedProtocol),
    ("http://[::1/hook", httpx.InvalidURL),
    ("http:///hook", httpx.InvalidURL),
])
async def test_unusable_urls_are_refused_before_connecting(url: str,
                                                           error: type[Exception]) -> None:
    async with transport() as sending:
        with pytest.raises(error):
            await sending.post(url, [], b"{}")


async def test_a_closed_port_is_a_connect_error() -> None:
    async with serving(always(NO_CONTENT)) as server:
        url = server.url
    async with transport() as sending:
        with pytest.raises(httpx.ConnectError):
            await sending.post(url, [], b"{}")


async def test_an_attempt_cut_short_closes_its_connection() -> None:
    release = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await release.wait()
        writer.close()

    listener = await asyncio.start_server(slow, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}/"
    async with listener, transport() as sending:
        post: Awaitable[object] = sending.post(url, [], b"{}")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(post, 0.2)
        assert not any(sending._idle.values())  # nothing half-read is kept for reuse
        release.set()
