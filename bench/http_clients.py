"""Which HTTP client drives more requests per second from one Python process?

`python bench/http_clients.py URL [SECONDS] [CONCURRENCY]` runs the load
generator's client (asyncio + h11, one keep-alive connection per worker) and
http.client in threads (one keep-alive connection per thread) for the same time
against the same URL and prints both rates. The figures in BENCHMARKS.md
("Load generator") come from it; they decided the loadtest's design.
"""

from __future__ import annotations

import asyncio
import http.client
import sys
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.tools.loadtest import HttpClient, HttpSpec


def asyncio_h11(url: str, seconds: float, concurrency: int) -> int:
    async def run() -> int:
        clients = [HttpClient(HttpSpec(url)) for _ in range(concurrency)]
        done = 0
        deadline = time.perf_counter() + seconds

        async def worker(client: HttpClient) -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                if await client.call() is None:
                    done += 1
            await client.close()
        await asyncio.gather(*(worker(c) for c in clients))
        return done
    return asyncio.run(run())


def threads_http_client(url: str, seconds: float, concurrency: int) -> int:
    u = urllib.parse.urlsplit(url)
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    deadline = time.perf_counter() + seconds
    counts = [0] * concurrency

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=10)
        while time.perf_counter() < deadline:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            if response.status < 400:
                counts[i] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


def main(argv: list[str]) -> int:
    url = argv[0]
    seconds = float(argv[1]) if len(argv) > 1 else 5.0
    concurrency = int(argv[2]) if len(argv) > 2 else 10
    for name, fn in (("asyncio+h11", asyncio_h11), ("http.client threads", threads_http_client)):
        n = fn(url, seconds, concurrency)
        print(f"{name:<20} {n / seconds:>9,.0f} req/s  ({n:,} requests in {seconds:g}s, concurrency {concurrency})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
