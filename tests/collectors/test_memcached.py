"""memcached probe against a real memcached: stats → cache families, faults, a silent socket."""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
from pathlib import Path

import pytest

from exporter.collectors import ProbeError
from exporter.collectors.memcached import Config, MemcachedCollector
from tests.collectors.helpers import collect_once, framed, run
from tests.support.servers import BlackHole, MemcachedServer, running


def collector(address: str, **extra: object) -> MemcachedCollector:
    return MemcachedCollector(Config.model_validate({"name": "fragments", "address": address, **extra}))


def test_stats_match_what_the_client_did(memcached_server: MemcachedServer) -> None:
    for i in range(4):
        memcached_server.set(f"page:{i}", "x" * 50)
    for _ in range(6):
        assert memcached_server.get("page:2") is not None
    for _ in range(3):
        assert memcached_server.get("absent") is None

    got = run(lambda: collect_once(collector(memcached_server.address)))
    stats = memcached_server.stats()
    assert got["cache_requests_total"] == {("fragments", "", "hit"): 6, ("fragments", "", "miss"): 3}
    assert got["cache_entries"] == {("fragments", ""): 4}
    assert got["cache_evictions_total"] == {("fragments", ""): 0}
    assert got["cache_memory_limit_bytes"] == {("fragments", ""): memcached_server.memory_mb * 1024 * 1024}
    assert got["cache_memory_bytes"] == {("fragments", ""): int(stats["bytes"])}
    assert got["cache_memory_bytes"][("fragments", "")] > 4 * 50
    assert got["cache_clients"][("fragments",)] >= 1


def test_evictions_are_counted() -> None:
    # A 2 MiB memcached (its smallest useful size) fills up and evicts.
    with running(MemcachedServer(Path(tempfile.mkdtemp(prefix="apm-mc-small-")), memory_mb=2)) as server:
        assert isinstance(server, MemcachedServer)
        for i in range(400):
            server.set(f"blob:{i}", "x" * 20_000)
        got = run(lambda: collect_once(collector(server.address)))
        stats = server.stats()
        assert int(stats["evictions"]) > 0
        assert got["cache_evictions_total"] == {("fragments", ""): int(stats["evictions"])}
        assert got["cache_entries"] == {("fragments", ""): int(stats["curr_items"])}


def test_a_socket_that_never_answers_times_out(black_hole: BlackHole) -> None:
    async def main() -> None:
        probe = collector(black_hole.address, timeout="200ms")
        with pytest.raises(ProbeError, match="TimeoutError"):
            await asyncio.wait_for(framed(probe).attempt(), timeout=10)
        with pytest.raises(asyncio.TimeoutError):  # cancelled by a scraper instead: nothing leaks
            probe2 = collector(black_hole.address, timeout="30s")
            await asyncio.wait_for(framed(probe2).attempt(), timeout=0.2)

    run(main)
    assert black_hole.connections == 2


def test_something_that_is_not_memcached_is_an_error() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        conn.recv(100)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        conn.close()

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        async def main() -> None:
            with pytest.raises(ProbeError, match="unexpected reply"):
                await framed(collector(f"127.0.0.1:{port}")).attempt()

        run(main)
    finally:
        thread.join()
        server.close()
