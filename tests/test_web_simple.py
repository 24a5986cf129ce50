"""The server answers a plain GET or HEAD without h11: byte for byte what h11 writes, and
everything else (malformed, pipelined, with a body) still goes through h11.

Each exchange runs twice against a real server in process, once as it is and once with the
direct path turned off, over raw sockets so that every byte of the answers is compared.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterable, Iterator

import pytest

from exporter import families, web
from exporter.model import Family
from exporter.web import Options, Server
from exporter.webconfig import WebConfig

GUARD = 30.0  # a client's timeout: turns a hang into a failure


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
# answers them directly (True) or through h11 (False).
EXCHANGES: list[tuple[list[bytes], bool]] = [
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
def test_the_direct_answer_is_what_h11_writes(server: int, requests: list[bytes], direct: bool,
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
    assert taken == [direct] * len(taken) and taken, "answered directly" if not direct else "answered by h11"


def test_an_http_1_0_request_is_answered_and_closed(server: int) -> None:
    answers = _exchange(server, [b"GET /-/healthy HTTP/1.0\r\n\r\n"])
    assert answers[0].startswith(b"HTTP/1.1 200 \r\n") and b"Connection: close\r\n" in answers[0]
    assert answers[0].endswith(b"Healthy.\n") and answers[1] == b""
