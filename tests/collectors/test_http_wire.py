"""The HTTP probe's connection (_Wire): bytes that arrive while no read waits are kept,
and TLS's last handshake flight leaves with the request.

The socket stays registered with the loop from the first read that waits to close, so
the loop can read bytes when no read is waiting (a cancelled read, the time between
two reads): the next read must return them, in order, before what follows.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from pathlib import Path

import pytest

from exporter.collectors import http
from exporter.collectors.http import Config, HTTPCollector, _Wire
from tests.support.tls import make_pki


async def _bytes_after_a_cancelled_read() -> list[bytes]:
    loop = asyncio.get_running_loop()
    ours, peer = socket.socketpair()
    mark, mark_peer = socket.socketpair()
    for sock in (ours, mark):
        sock.setblocking(False)
    wire = _Wire(ours)
    try:
        waiting = asyncio.create_task(wire.recv())
        await asyncio.sleep(0)  # it waits: the socket is registered now
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        # The loop reads "first" with no read waiting: both sockets are ready at the same
        # poll, so the mark's read ends only after the wire's reader has run.
        marked = asyncio.create_task(loop.sock_recv(mark, 1))
        await asyncio.sleep(0)
        peer.send(b"first")
        mark_peer.send(b"m")
        await marked
        peer.send(b"second")
        peer.close()
        got = [await wire.recv()]
        while got[-1]:
            got.append(await wire.recv())
        return got
    finally:
        wire.close()
        for sock in (peer, mark, mark_peer):
            sock.close()


def test_bytes_read_while_no_read_waits_come_first() -> None:
    assert b"".join(asyncio.run(_bytes_after_a_cancelled_read())) == b"firstsecond"


def _tls_answer(server: socket.socket, context: ssl.SSLContext) -> None:
    """Accept one TLS connection, read a request head, answer it and close (a thread's work)."""
    conn, _ = server.accept()
    with context.wrap_socket(conn, server_side=True) as tls:
        head = b""
        while b"\r\n\r\n" not in head:
            head += tls.recv(4096)
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")


class _CountingLoop:
    """The running loop, counting the sends the wire makes through it (one sendall: one write)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.sends: list[int] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._loop, name)

    async def sock_sendall(self, sock: socket.socket, data: bytes) -> None:
        self.sends.append(len(data))
        await self._loop.sock_sendall(sock, data)


async def _tls_exchange(port: int, ca: str) -> tuple[str, list[int], bytes]:
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    wire = _Wire(sock)
    counting = wire._loop = _CountingLoop(loop)  # type: ignore[assignment]
    try:
        version = (await wire.start_tls(ssl.create_default_context(cafile=ca), "127.0.0.1")).version() or ""
        await wire.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := await wire.recv():
            answer += chunk
        return version, counting.sends, answer
    finally:
        wire.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_the_request_leaves_with_the_handshakes_last_flight(tmp_path: Path, version: ssl.TLSVersion) -> None:
    """TLS 1.3's client Finished is written with the request, not on its own before it.

    One write and one segment fewer per HTTPS probe; the server still completes its
    handshake and answers (on TLS 1.2 the client's last flight precedes the server's
    Finished, so the request follows it as before).
    """
    pki = make_pki(tmp_path / "pki")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server.cert, pki.server.key)
    context.minimum_version = context.maximum_version = version
    server = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=_tls_answer, args=(server, context))
    thread.start()
    try:
        got, sends, answer = asyncio.run(_tls_exchange(server.getsockname()[1], str(pki.ca.cert)))
    finally:
        thread.join(10)
        server.close()
    assert answer.endswith(b"\r\n\r\nok")
    if version is ssl.TLSVersion.TLSv1_3:
        assert (got, len(sends)) == ("TLSv1.3", 2)  # ClientHello; Finished and the request
    else:
        assert (got, len(sends)) == ("TLSv1.2", 3)  # ClientHello; key exchange and Finished; the request


async def _connect_steps(port: int) -> tuple[int, BaseException | None]:
    """How often the probe's connect gave the loop a turn, and what it raised."""
    collector = HTTPCollector(Config(name="api", url=f"http://127.0.0.1:{port}/"))
    coro = collector._connect([(socket.AF_INET, ("127.0.0.1", port))])
    steps = 0
    try:
        while True:
            waited = coro.send(None)
            steps += 1
            waited._asyncio_future_blocking = False  # handed to this task, as a task takes what a step yields
            await waited  # the future it waits on, resolved by the loop
    except StopIteration as done:
        done.value[1].close()
        return steps, None
    except OSError as err:
        return steps, err


def test_a_connect_done_at_once_takes_no_loop_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loopback connect is complete when connect(2) returns: the probe goes straight on to its
    request (the loop's sock_connect waited a turn, during which the scrape's own work ran and
    counted as connect time). A refusal is raised at once too; one not done at once still waits
    on the loop and connects."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    closed = socket.create_server(("127.0.0.1", 0))
    refused_port = closed.getsockname()[1]
    closed.close()
    try:
        assert asyncio.run(_connect_steps(port)) == (0, None)
        steps, err = asyncio.run(_connect_steps(refused_port))
        assert steps == 0 and isinstance(err, ConnectionRefusedError), err
        monkeypatch.setattr(http, "_ready_now", lambda fd: False)  # as a connect over a real network
        assert asyncio.run(_connect_steps(port)) == (1, None)
    finally:
        listener.close()
