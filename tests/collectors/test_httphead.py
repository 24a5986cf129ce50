"""The HTTP probe's head fast path (httphead.parse_head) against h11 reading the same answers.

A raw TCP server sends canned answers byte for byte, some in pieces (a head split across
reads, a body in three writes), so each one is read by both paths over a real socket: the
probe as it runs (fast path, h11 for what it leaves) and the probe with h11 reading
everything. Both must export the same values, or fail with the same error.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from exporter.collectors.http import Config, HTTPCollector
from exporter.collectors.httphead import parse_head
from tests.collectors.helpers import run, values

_BODY = b"<html>" + b"ok " * 680 + b"</html>"


def _plain(status: bytes = b"200 OK", body: bytes = _BODY, extra: bytes = b"") -> list[bytes]:
    return [b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n" % len(body) + extra + b"\r\n" + body]


# path -> the answer's pieces, each sent in a write of its own with a pause between.
ANSWERS: dict[str, list[bytes]] = {
    "/plain": _plain(),
    "/head-and-body-apart": [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(_BODY), _BODY],
    "/body-in-pieces": [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(_BODY) + _BODY[:100],
                        _BODY[100:1000], _BODY[1000:]],
    "/head-split": [b"HTTP/1.1 200 OK\r\nContent-Le", b"ngth: 5\r\n\r\nhello"],
    "/chunked": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", b"6\r\n world\r\n0\r\n\r\n"],
    "/chunked-and-length": [(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"5\r\nhello\r\n0\r\n\r\n")],
    "/to-the-close": [b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\n" + _BODY[:500], _BODY[500:]],
    "/redirect": [b"HTTP/1.1 302 Found\r\nLocation: /plain\r\nContent-Length: 4\r\n\r\nmove"],
    "/redirect-relative": [b"HTTP/1.1 301 Moved\r\nLocation: redirect\r\nContent-Length: 0\r\n\r\n"],
    "/two-locations": [b"HTTP/1.1 307 X\r\nLocation: /nowhere\r\nLocation: /plain\r\nContent-Length: 0\r\n\r\n"],
    "/redirect-without-location": [b"HTTP/1.1 302 Found\r\nContent-Length: 2\r\n\r\nno"],
    "/no-content": [b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"],
    "/not-modified": [b"HTTP/1.1 304 Not Modified\r\n\r\n"],
    "/continue": [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
    "/error": _plain(b"503 Service Unavailable", b"down for maintenance"),
    "/teapot": _plain(b"418 I'm a teapot", b"short and stout"),
    "/no-reason": [b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok"],
    "/empty-reason": [b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok"],
    "/bare-lf": [b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"],
    "/folded": [b"HTTP/1.1 200 OK\r\nX-Long: a\r\n  b\r\nContent-Length: 2\r\n\r\nok"],
    "/spaces-around-value": [b"HTTP/1.1 200 OK\r\nContent-Length:   2 \t\r\nX-Empty:\r\n\r\nok"],
    "/latin1-location": [b"HTTP/1.1 302 Found\r\nLocation: /plain?q=\xe9t\xe9\r\nContent-Length: 0\r\n\r\n"],
    "/same-length-twice": [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"],
    "/conflicting-lengths": [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!"],
    "/bad-length": [b"HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\nok"],
    "/huge-length": [b"HTTP/1.1 200 OK\r\nContent-Length: 123456789012345678901\r\n\r\nok"],
    "/more-than-its-length": [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello and then some"],
    "/truncated": [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"],
    "/malformed-field": [b"HTTP/1.1 200 OK\r\nNo colon here\r\nContent-Length: 2\r\n\r\nok"],
    "/control-in-value": [b"HTTP/1.1 200 OK\r\nX-Odd: a\x01b\r\nContent-Length: 2\r\n\r\nok"],
    "/not-http": [b"SSH-2.0-OpenSSH_9.2\r\n\r\n"],
    "/http2-version": [b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok"],
    "/nothing": [],
    "/big-head": [b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 17000 + b"\r\nContent-Length: 2\r\n\r\nok"],
    "/json": [b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n{"status": "ok", "n": [1, ', b"2]}"],
}


class RawServer:
    """Answers each connection with ANSWERS[path] as raw bytes, then closes it (one thread, started
    before the test, so the scenario's check for leftover threads holds)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                self._answer(conn)  # one at a time: the probe opens one connection per hop, in turn
            except OSError:
                pass  # the probe hung up before the end (a HEAD, a redirect it follows)

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request = b""
            while b"\r\n\r\n" not in request:
                data = conn.recv(65536)
                if not data:
                    return
                request += data
            path = request.split(b" ", 2)[1].decode().split("?")[0]
            for i, piece in enumerate(ANSWERS.get(path, _plain(b"404 Not Found", b"no"))):
                if i:
                    time.sleep(0.005)  # a server writing in pieces: each reaches the probe as a read of its own
                conn.sendall(piece)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def raw() -> Iterator[RawServer]:
    server = RawServer()
    yield server
    server.close()


def _probe(url: str, fast: bool, **extra: object) -> HTTPCollector:
    collector = HTTPCollector(Config.model_validate({"name": "api", "url": url, **extra}))
    collector.fast_heads = fast
    return collector


def _outcome(collector: HTTPCollector) -> object:
    """What a read exported, timings aside (they differ between any two reads), or its error."""
    async def main() -> object:
        try:
            async with asyncio.timeout(10):  # the job's timeout, which collect() alone does not have
                got = values(await collector.collect())
        except Exception as err:  # noqa: BLE001  (the error is what is compared)
            return f"{type(err).__name__}: {err}"
        got.pop("http_probe_phase_seconds")
        latency = got.pop("operation_duration_seconds")
        return got, {labels: h.count for labels, h in latency.items()}

    return run(main)


CHECKS: list[dict[str, object]] = [
    {},
    {"method": "HEAD"},
    {"method": "POST", "body": "a=1"},
    {"follow_redirects": False},
    {"max_redirects": 0},
    {"body_matches": ["ok ok", "^<html>"], "body_not_matches": ["error"]},
    {"body_json": {"status": "ok", "n.1": 2}},
    {"expected_status": [204, 304, 418]},
]


@pytest.mark.parametrize("path", sorted(ANSWERS))
def test_the_fast_path_reads_every_answer_as_h11_does(raw: RawServer, path: str) -> None:
    url = f"http://127.0.0.1:{raw.port}{path}"
    for extra in CHECKS:
        fast, slow = _outcome(_probe(url, True, **extra)), _outcome(_probe(url, False, **extra))
        assert fast == slow, f"{path} {extra}"


def test_the_fast_path_takes_plain_heads_and_leaves_the_rest_to_h11() -> None:
    """The comparison above proves nothing if every answer went to h11: these must not."""
    for path in ("/plain", "/redirect", "/no-content", "/error", "/no-reason", "/spaces-around-value",
                 "/more-than-its-length", "/truncated", "/latin1-location", "/to-the-close"):
        head = parse_head(b"".join(ANSWERS[path]), "GET")
        assert head is not None, path
    assert parse_head(b"".join(ANSWERS["/plain"]), "GET") == (200, "1.1", None, len(_BODY), len(ANSWERS["/plain"][0]) - len(_BODY))
    assert parse_head(b"".join(ANSWERS["/plain"]), "HEAD").length == 0  # type: ignore[union-attr]
    assert parse_head(b"".join(ANSWERS["/to-the-close"]), "GET").length is None  # type: ignore[union-attr]
    assert parse_head(b"".join(ANSWERS["/two-locations"]), "GET").location == "/plain"  # type: ignore[union-attr]
    for path in ("/head-split", "/chunked", "/chunked-and-length", "/continue", "/bare-lf", "/folded",
                 "/same-length-twice", "/conflicting-lengths", "/bad-length", "/huge-length",
                 "/malformed-field", "/control-in-value", "/not-http", "/http2-version", "/big-head"):
        assert parse_head(ANSWERS[path][0], "GET") is None, path
    assert parse_head(b"".join(ANSWERS["/plain"]), "CONNECT") is None
