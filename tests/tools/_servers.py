"""Small real HTTP servers the tools' tests drive: a target with known delay and errors, and
an exposition server whose body the test controls."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 makes 10+ simultaneous connects wait for SYN retries


class _Base:
    handler: type[BaseHTTPRequestHandler]

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", 0), self.handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _reply(h: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str = "text/plain") -> None:
    # Head and body in one write: two small writes meet Nagle and delayed ACKs (+40 ms).
    head = (f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    h.wfile.write(head + body)


class _TargetHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        owner: TargetServer = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        owner.last_body = self.rfile.read(length) if length else b""
        owner.last_headers = dict(self.headers)
        status = owner.admit()
        if owner.delay:
            time.sleep(owner.delay)
        _reply(self, status, b"ok\n" if status == 200 else b"error\n")

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


class TargetServer(_Base):
    """Answers after `delay` seconds; every `error_every`-th request (1-based) gets a 500; above
    `limit_per_second` requests a second on average over the last `limit_window` seconds, 429
    (a longer window lets a client that fell behind and caught up stay under the limit)."""

    handler = _TargetHandler

    def __init__(self, delay: float = 0.0, error_every: int = 0, limit_per_second: int = 0,
                 limit_window: float = 1.0) -> None:
        super().__init__()
        self.delay, self.error_every, self.limit = delay, error_every, limit_per_second
        self.window = limit_window
        self.count = 0
        self.last_body = b""
        self.last_headers: dict[str, str] = {}
        self.recent: collections.deque[float] = collections.deque()

    def admit(self) -> int:
        with self.lock:
            self.count += 1
            n = self.count
            if self.limit:
                now = time.monotonic()
                while self.recent and self.recent[0] < now - self.window:
                    self.recent.popleft()
                self.recent.append(now)
                if len(self.recent) > self.limit * self.window:
                    return 429
        return 500 if self.error_every and n % self.error_every == 0 else 200


class _ExpositionHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        owner: ExpositionServer = self.server.owner  # type: ignore[attr-defined]
        with owner.lock:
            owner.served += 1
            body = owner.body(owner.served).encode()
        _reply(self, 200, body, "text/plain; version=0.0.4")

    def log_message(self, *args: object) -> None:
        pass


class ExpositionServer(_Base):
    """Serves `body(n)` on every path, n = 1 for the first request, 2 for the second, …"""

    handler = _ExpositionHandler

    def __init__(self, body: Callable[[int], str]) -> None:
        super().__init__()
        self.body = body
        self.served = 0
