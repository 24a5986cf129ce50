"""The HTTP probe's own cost in process: HTTPCollector.collect() against bench/probes.py's site.

    python bench/probe_collect.py --collects 300 --rounds 5 [--module NAME=PATH ...]
    python bench/probe_collect.py --waits 20000 --rounds 7 [--module NAME=PATH ...]

Each --module is a copy of exporter/collectors/http.py (for example one written by
`git show <commit>:exporter/collectors/http.py > /tmp/before.py`), loaded beside the
checkout's; the variants alternate round by round against the same HTTP and HTTPS
site (the stdlib's threading http.server in a process of its own, a 2 KB page), so a
busy machine slows them alike. Prints, per variant, the median wall time of a collect
and this process's CPU per collect (the site's CPU is not in it), medians of the rounds.

--waits N times, instead, one read that waits (nothing yet to read when it starts) on a
socket pair, N a round: each variant's _Wire.recv(), which is all that differs between
reading the socket through the loop's sock_recv and keeping it registered, without the
site's noise in it (an HTTPS collect waits on about four reads).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from probes import SITE
from scrape import free_port

from exporter.collectors import http
from tests.support.tls import make_pki


def load(name: str, path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"exporter.collectors._bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def wait_for(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the site on {port} did not start")


async def collects(collector: Any, n: int) -> tuple[float, float]:
    walls = []
    cpu = time.process_time()
    for _ in range(n):
        start = time.perf_counter()
        await collector.collect()
        walls.append(time.perf_counter() - start)
    return statistics.median(walls) * 1e6, (time.process_time() - cpu) / n * 1e6


async def waits(module: ModuleType, n: int) -> float:
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    wire = module._Wire(ours)
    loop = asyncio.get_running_loop()
    cpu = time.process_time()
    for _ in range(n):
        loop.call_soon(peer.send, b"x")  # runs once recv() waits
        await wire.recv()
    took = (time.process_time() - cpu) / n * 1e6
    wire.close()
    peer.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collects", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--module", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--only", default="http,https")
    parser.add_argument("--waits", type=int, default=0, metavar="N")
    args = parser.parse_args()
    modules = {name: load(name, path) for name, path in (m.split("=", 1) for m in args.module)}
    modules["checkout"] = http
    if args.waits:
        cpus: dict[str, list[float]] = {name: [] for name in modules}
        for _ in range(args.rounds):
            for name, module in modules.items():
                cpus[name].append(asyncio.run(waits(module, args.waits)))
        for name, rounds in cpus.items():
            print(f"{name:10} CPU {statistics.median(rounds):6.2f} us a read that waits", flush=True)
        return
    sites: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(Path(tmp) / "pki")
        try:
            for kind in args.only.split(","):
                tls = [str(pki.server.cert), str(pki.server.key)] if kind == "https" else []
                port = free_port()
                sites.append(subprocess.Popen([sys.executable, "-c", SITE, str(port), *tls]))
                wait_for(port)
                probes = {name: m.HTTPCollector(m.Config(name="bench", url=f"{kind}://127.0.0.1:{port}/",
                                                         ca_file=str(pki.ca.cert))) for name, m in modules.items()}
                results: dict[str, list[tuple[float, float]]] = {name: [] for name in probes}
                for probe in probes.values():
                    asyncio.run(collects(probe, 50))  # warm-up: the TLS context, the caches
                for _ in range(args.rounds):
                    for name, probe in probes.items():
                        results[name].append(asyncio.run(collects(probe, args.collects)))
                for name, rounds in results.items():
                    print(f"{kind:6} {name:10} wall median {statistics.median(r[0] for r in rounds):7.1f} us"
                          f"  CPU {statistics.median(r[1] for r in rounds):7.1f} us a collect", flush=True)
        finally:
            for site in sites:
                site.terminate()
                site.wait(10)


if __name__ == "__main__":
    main()
