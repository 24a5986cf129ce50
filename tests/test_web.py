"""The daemon's web server, in process: what it promises while a scrape is being rendered."""

from __future__ import annotations

import asyncio
import http.client
import threading
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from exporter import families
from exporter.model import Family
from exporter.web import INLINE_RENDER_LINES, Options, Server, _gzip

GUARD = 30.0  # turns a hang into a failure (a client's timeout); never reached when the server is right


class HeldSamples:
    """Samples whose iteration (inside the render) waits until the test releases it."""

    def __init__(self, n: int) -> None:
        self.rows = [((f"q{i}",), float(i)) for i in range(n)]
        self.rendering = threading.Event()
        self.release = threading.Event()

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Any]:
        self.rendering.set()
        self.release.wait(2 * GUARD)  # longer than a client waits: a stuck loop fails the test
        return iter(self.rows)


class _App:
    namespace = "apm"
    ready = True

    def __init__(self, samples: HeldSamples) -> None:
        self.samples = samples

    async def collect(self) -> Iterable[Family]:
        return [Family(families.QUEUE_DEPTH, self.samples)]  # type: ignore[arg-type]

    async def reload(self) -> str | None:
        return None


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=GUARD)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_healthy_and_other_requests_are_answered_while_a_scrape_renders() -> None:
    # Big enough to be rendered on the worker thread (a small scrape renders on the loop).
    samples = HeldSamples(INLINE_RENDER_LINES + 1)
    loop = asyncio.new_event_loop()
    server = Server(_App(samples), Options())
    loop.run_until_complete(server.start("127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = server.ports[0]
    scrape: list[tuple[int, bytes]] = []
    scraper = threading.Thread(target=lambda: scrape.append(get(port, "/metrics")))
    try:
        scraper.start()
        assert samples.rendering.wait(GUARD), "the scrape never reached the render"
        # The render is now stuck inside the family's samples. Had it run on the event loop, the
        # loop would be stuck with it and these would time out instead of being answered.
        assert get(port, "/-/healthy") == (200, b"Healthy.\n")
        assert get(port, "/-/ready") == (200, b"Ready.\n")
        assert not scrape, "the scrape finished before it was released"
        samples.release.set()
        scraper.join(GUARD)
        status, body = scrape[0]
        assert status == 200 and body.count(b"\napm_queue_depth{") == INLINE_RENDER_LINES + 1
    finally:
        samples.release.set()
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(GUARD)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(GUARD)
        loop.close()


def test_gzip_of_any_size_inflates_to_the_body_and_is_as_small_as_with_zlibs_defaults() -> None:
    line = b'apm_exporter_statsd_parse_errors_total{reason="malformed_line"} 0.0\n'
    for size in (1, 1000, 1025, 4300, 9000, 33_000, 300_000):
        body = (line * (size // len(line) + 1))[:size]
        parts = [body[: size // 3], body[size // 3 :]]
        packed = b"".join(_gzip(parts))
        assert zlib.decompress(packed, 31) == body
        default = zlib.compressobj(1, zlib.DEFLATED, 31)
        assert len(packed) <= len(default.compress(body) + default.flush()) * 1.01 + 8
