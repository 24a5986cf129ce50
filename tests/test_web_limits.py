"""Scrape limits: `max_concurrent_scrapes` really bounds how many scrapes collect at once, and a
scrape whose Prometheus timeout passed is not rendered.

The app counts the collects in progress and holds each one until the test lets
it go, so overlapping scrapes are seen, not inferred from timings: without the
limit, every scrape sent would be inside collect() together.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
from collections.abc import Iterable
from typing import Any

import pytest

from exporter import families
from exporter.exposition import Renderer
from exporter.model import Family
from exporter.web import Options, Server

GUARD = 30.0  # a client's timeout: turns a hang into a failure
SCRAPES = 6


class _CountingApp:
    namespace = "apm"
    ready = True

    def __init__(self) -> None:
        self.inside = 0
        self.most_inside = 0
        self.entered = threading.Semaphore(0)
        self.release = asyncio.Event()

    async def collect(self) -> Iterable[Family]:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        self.entered.release()
        try:
            await self.release.wait()
        finally:
            self.inside -= 1
        return [families.QUEUE_DEPTH.one(1.0, "q")]

    async def reload(self) -> str | None:
        return None


def _healthy(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=GUARD)
    try:
        conn.request("GET", "/-/healthy")
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _status(sock: socket.socket) -> bytes:
    sock.settimeout(GUARD)
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return head.split(b"\r\n", 1)[0]


@pytest.mark.parametrize("limit", [1, 2])
def test_no_more_scrapes_collect_at_once_than_the_limit(limit: int) -> None:
    app = _CountingApp()
    loop = asyncio.new_event_loop()
    server = Server(app, Options(max_concurrent_scrapes=limit))
    loop.run_until_complete(server.start("127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = server.ports[0]
    clients = [socket.create_connection(("127.0.0.1", port), timeout=GUARD) for _ in range(SCRAPES)]
    try:
        for sock in clients:  # every request is on the wire before anything is checked
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        for _ in range(limit):
            assert app.entered.acquire(timeout=GUARD), "a scrape within the limit never started collecting"
        # Health checks sent after the scrapes are answered by the same loop: once three have
        # been, the loop has read and dispatched every scrape (queued ones wait for their turn).
        for _ in range(3):
            assert _healthy(port) == 200
        assert app.inside == limit, f"{app.inside} scrapes collecting at once with a limit of {limit}"
        loop.call_soon_threadsafe(app.release.set)
        assert [_status(sock) for sock in clients] == [b"HTTP/1.1 200 "] * SCRAPES
        assert app.most_inside == limit
    finally:
        for sock in clients:
            sock.close()
        loop.call_soon_threadsafe(app.release.set)
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(GUARD)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(GUARD)
        loop.close()


class _LateApp:
    """Collects until the loop's clock is past `after` seconds from the request: a scrape whose
    collect outlasted the client's timeout, without the test timing anything."""

    namespace = "apm"
    ready = True

    def __init__(self, after: float) -> None:
        self.after = after

    async def collect(self) -> Iterable[Family]:
        loop = asyncio.get_running_loop()
        until = loop.time() + self.after
        while loop.time() <= until:
            await asyncio.sleep(0.01)
        return [families.QUEUE_DEPTH.one(1.0, "q")]

    async def reload(self) -> str | None:
        return None


class _CountingRenderer(Renderer):
    def __init__(self) -> None:
        super().__init__()
        self.renders = 0

    def render_parts(self, *args: Any, **kwargs: Any) -> list[bytes]:
        self.renders += 1
        return super().render_parts(*args, **kwargs)


@pytest.mark.parametrize(("client_timeout", "status", "renders"), [("0.05", 503, 0), ("60", 200, 1)])
def test_a_scrape_whose_prometheus_timeout_passed_is_not_rendered(client_timeout: str, status: int,
                                                                  renders: int) -> None:
    # Prometheus gives up at its scrape timeout; rendering after that only took the CPU and the
    # GIL from the StatsD reader and the next scrape (issue 15's soak at 1 s timeouts).
    loop = asyncio.new_event_loop()
    server = Server(_LateApp(0.1), Options())
    renderer = server.renderer = _CountingRenderer()
    loop.run_until_complete(server.start("127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.ports[0], timeout=GUARD)
        conn.request("GET", "/metrics", headers={"X-Prometheus-Scrape-Timeout-Seconds": client_timeout})
        response = conn.getresponse()
        response.read()
        conn.close()
        assert response.status == status
        assert renderer.renders == renders
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(GUARD)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(GUARD)
        loop.close()
