"""The server answers a plain GET or HEAD on its Protocol, without streams or h11: byte for
byte what h11 writes, and everything else (malformed, pipelined, with a body) still goes
through h11, to which the connection is handed with what it has read.

Each exchange runs twice against a real server in process, once as it is and once with the
direct path turned off (every connection handed to h11 at its first read), over raw sockets
so that every byte of the answers is compared.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter import families, web
from exporter.model import Family
from exporter.web import Options, Server
from exporter.webconfig import WebConfig
from tests.support.daemon import loaded_after_gets
from tests.support.net import free_port

GUARD = 30.0  # a client's timeout: turns a hang into a failure
ROOT = Path(__file__).resolve().parent.parent


class _App:
    namespace = "apm"
    ready = True

    async def collect(self) -> Iterable[Family]:
        # Over a kilobyte, so that gzip applies when it is asked for.
        return [families.QUEUE_DEPTH.family(((f"queue{i}",), float(i)) for i in range(60))]

    async def reload(self) -> str | None:
        return None


HOST = b"Host: 127.0.0.1\r\n"
# Each exchange: the requests sent one after another on one connection, each after the answer
# to the one before (two in one element are sent at once: pipelined), and whether the server
# answers them directly (True) or through h11 (False); a list: what each read of the
# connection's Protocol found (once handed to h11, a connection stays with it).
EXCHANGES: list[tuple[list[bytes], bool | list[bool]]] = [
    ([b"GET /metrics HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n"], True),
    ([b"GET /-/healthy HTTP/1.1\r\n" + HOST + b"\r\n",
      b"GET /metrics HTTP/1.1\r\n" + HOST + b"Accept-Encoding: gzip, deflate\r\n\r\n",
      b"GET /metrics HTTP/1.1\r\nhost:   127.0.0.1  \r\nAccept: application/openmetrics-text; version=1.0.0\r\n"
      + b"Connection: keep-alive, Close\r\n\r\n"], True),
    ([b"HEAD /metrics HTTP/1.1\r\n" + HOST + b"\r\n", b"GET /-/ready HTTP/1.0\r\n\r\n"], True),
    ([b"GET / HTTP/1.1\r\n" + HOST + b"\r\n", b"GET /nothing-here?a=b HTTP/1.1\r\n" + HOST + b"\r\n",
      b"GET /-/reload HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n"], True),
    # What h11 must read: pipelined, a body, no Host, two Hosts, a folded header, a bad target.
    ([b"GET /-/healthy HTTP/1.1\r\n" + HOST + b"\r\nGET /-/ready HTTP/1.1\r\n" + HOST
      + b"Connection: close\r\n\r\n"], False),
    ([b"POST /-/reload HTTP/1.1\r\n" + HOST + b"Content-Length: 0\r\n\r\n",
      b"GET /-/healthy HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\nConnection: close\r\n\r\nabc"], False),
    ([b"GET /metrics HTTP/1.1\r\n\r\n"], False),
    ([b"GET /metrics HTTP/1.1\r\n" + HOST + HOST + b"\r\n"], False),
    ([b"GET /metrics HTTP/1.1\r\n" + HOST + b"X-A: b\r\n c\r\n\r\n"], False),
    ([b"GET /m\x01 HTTP/1.1\r\n" + HOST + b"\r\n"], False),
    # Answered directly, then handed to h11 by a request with a body, which then answers the rest.
    ([b"GET /metrics HTTP/1.1\r\n" + HOST + b"\r\n",
      b"POST /-/reload HTTP/1.1\r\n" + HOST + b"Content-Length: 0\r\n\r\n",
      b"GET /-/healthy HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n"], [True, False]),
]


def _answer(sock: socket.socket, buffer: bytearray, head_only: bool) -> bytes | None:
    """One whole answer (its Content-Length tells where it ends), None at the end of the stream."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buffer += chunk
    head = bytes(buffer).partition(b"\r\n\r\n")[0]
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length" and not head_only:
            length = int(value)
    size = len(head) + 4 + length
    while len(buffer) < size:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buffer += chunk
    answer = bytes(buffer[:size])
    del buffer[:size]
    return answer


def _exchange(port: int, requests: list[bytes]) -> list[bytes]:
    """Every answer, then whatever the server sent after them before it closed."""
    answers: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=GUARD) as sock:
        buffer = bytearray()
        for request in requests:
            sock.sendall(request)
            for _ in range(max(1, request.count(b" HTTP/1."))):
                answer = _answer(sock, buffer, request.startswith(b"HEAD "))
                if answer is None:
                    return answers
                answers.append(answer)
        sock.shutdown(socket.SHUT_WR)
        rest = bytes(buffer)
        while chunk := sock.recv(65536):
            rest += chunk
        answers.append(rest)
    return answers


@pytest.fixture
def server() -> Iterator[int]:
    loop = asyncio.new_event_loop()
    server = Server(_App(), Options(web_config=WebConfig(headers={"X-Frame-Options": "deny"})))
    loop.run_until_complete(server.start("127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server.ports[0]
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(GUARD)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(GUARD)
        loop.close()


@pytest.mark.parametrize(("requests", "direct"), EXCHANGES, ids=[str(i) for i in range(len(EXCHANGES))])
def test_the_direct_answer_is_what_h11_writes(server: int, requests: list[bytes], direct: bool | list[bool],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[bool] = []
    simple_request = web._simple_request

    def spy(data: bytes) -> web._Simple | None:
        found = simple_request(data)
        taken.append(found is not None)
        return found

    monkeypatch.setattr(web, "_simple_request", spy)
    answered = _exchange(server, requests)
    monkeypatch.setattr(web, "_simple_request", lambda data: None)
    assert answered == _exchange(server, requests)
    assert len(answered) > len(requests) and all(a.startswith(b"HTTP/1.1 ") for a in answered[:-1])
    expected = direct if isinstance(direct, list) else [direct] * len(taken)
    assert taken == expected and taken, f"reads found simple: {taken}, expected {expected}"


class _HeldApp(_App):
    """Holds each collect until the test lets it go, so the client can act during an answer."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = asyncio.Event()

    async def collect(self) -> Iterable[Family]:
        self.entered.set()
        await self.release.wait()
        return await super().collect()


@contextmanager
def _held_server(monkeypatch: pytest.MonkeyPatch, event: str) -> Iterator[tuple[_HeldApp, int, threading.Semaphore,
                                                                               asyncio.AbstractEventLoop]]:
    """A server whose collects are held; the semaphore counts calls of the Protocol's `event`."""
    seen = threading.Semaphore(0)
    original = getattr(web._Connection, event)

    def counted(self: web._Connection, *args: Any) -> Any:
        result = original(self, *args)
        seen.release()
        return result

    monkeypatch.setattr(web._Connection, event, counted)
    app = _HeldApp()
    loop = asyncio.new_event_loop()
    server = Server(app, Options())
    loop.run_until_complete(server.start("127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield app, server.ports[0], seen, loop
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(GUARD)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(GUARD)
        loop.close()


def test_a_scrape_whose_client_closed_its_side_is_still_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    with _held_server(monkeypatch, "eof_received") as (app, port, eofs, loop), \
            socket.create_connection(("127.0.0.1", port), timeout=GUARD) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n" + HOST + b"\r\n")
        sock.shutdown(socket.SHUT_WR)  # the client's end of the stream, before any answer
        assert app.entered.wait(GUARD) and eofs.acquire(timeout=GUARD)  # the server saw the end mid-scrape
        loop.call_soon_threadsafe(app.release.set)
        answer = _answer(sock, bytearray(), False)  # whole: as long as its Content-Length says
        assert answer is not None and answer.startswith(b"HTTP/1.1 200 ") and b'{queue="queue59"}' in answer


def test_a_request_read_while_an_answer_is_in_flight_is_answered_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with _held_server(monkeypatch, "data_received") as (app, port, reads, loop), \
            socket.create_connection(("127.0.0.1", port), timeout=GUARD) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n" + HOST + b"\r\n")
        assert app.entered.wait(GUARD) and reads.acquire(timeout=GUARD)
        sock.sendall(b"GET /-/healthy HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n")
        assert reads.acquire(timeout=GUARD)  # read by the Protocol while the scrape is held
        loop.call_soon_threadsafe(app.release.set)
        buffer = bytearray()
        first, second = _answer(sock, buffer, False), _answer(sock, buffer, False)
        assert first is not None and second is not None
        assert first.startswith(b"HTTP/1.1 200 ") and b"apm_queue_depth" in first
        assert second.startswith(b"HTTP/1.1 200 ") and second.endswith(b"Healthy.\n")
        assert sock.recv(65536) == b""  # closed, as the second request asked


def test_a_daemon_scraped_by_plain_gets_never_loads_h11(tmp_path: Path) -> None:
    # Run as `apm-exporter` runs, on the repository's config.yaml (StatsD on a free port).
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["statsd"]["listeners"] = [f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert loaded_after_gets(tmp_path / "config.yaml", "h11", ["/metrics", "/-/ready", "/", "/nothing-here"]) == []


def test_what_a_client_sends_during_an_answer_is_held_within_a_head_s_size(monkeypatch: pytest.MonkeyPatch) -> None:
    connections: list[web._Connection] = []
    made = web._Connection.connection_made

    def recorded(self: web._Connection, transport: asyncio.BaseTransport) -> None:
        connections.append(self)
        made(self, transport)

    monkeypatch.setattr(web._Connection, "connection_made", recorded)
    with _held_server(monkeypatch, "data_received") as (app, port, reads, loop), \
            socket.create_connection(("127.0.0.1", port), timeout=GUARD) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n" + HOST + b"\r\n")
        assert app.entered.wait(GUARD) and reads.acquire(timeout=GUARD)
        (connection,) = connections
        sock.sendall(b"X" * (4 * web.MAX_HEADER_BYTES))  # no request: what a misbehaving client sends
        transport = connection._transport
        assert transport is not None
        deadline = time.monotonic() + GUARD
        while transport.is_reading() and len(connection._pending) < 4 * web.MAX_HEADER_BYTES:
            assert time.monotonic() < deadline, "the server neither read the bytes nor stopped reading"
            time.sleep(0.01)
        assert not transport.is_reading()  # it stopped reading instead of holding all of it
        assert len(connection._pending) <= web.MAX_HEADER_BYTES + 256 * 1024  # past the limit by a read at most
        loop.call_soon_threadsafe(app.release.set)
        buffer = bytearray()
        first = _answer(sock, buffer, False)
        assert first is not None and first.startswith(b"HTTP/1.1 200 ") and b"apm_queue_depth" in first
        rest = bytes(buffer)
        while chunk := sock.recv(65536):  # then h11 refuses what followed, and the server closes
            rest += chunk
        assert rest.startswith(b"HTTP/1.1 4")
