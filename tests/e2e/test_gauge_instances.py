"""Gauges from many processes stay exact: four gunicorn workers, each reporting a pool.

Every worker sends its share as an absolute value under its own instance id, every
flush; the daemon sums the instances it has heard from within `instance_expiry`.
Under each fault the gauge must come back to the exact sum within one expiry
period: a SIGKILLed worker (gunicorn starts another), a daemon restart, and
datagrams the kernel drops while the daemon is stopped. With relative deltas
(the old wire format) each of these left the sum wrong for good.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from exporter.statsd.kernel import read_drops
from tests.support.daemon import Daemon
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 4
EXPIRY = 2.0
GUARD = 30.0  # bounds every wait: a hang becomes a failure


def _active(daemon: Daemon) -> float | None:
    return daemon.value("apm_pool_connections", pool="db", state="active")


def _settles_at(daemon: Daemon, want: float, not_before: float = 0.0) -> float | None:
    """The gauge once it equals `want` at or after `not_before` (monotonic), or its last value."""
    deadline = time.monotonic() + GUARD
    got = None
    while time.monotonic() < deadline:
        got = _active(daemon)
        if got == want and time.monotonic() >= not_before:
            return got
        time.sleep(0.1)
    return got


def _workers(master: psutil.Process) -> list[psutil.Process]:
    return [p for p in master.children() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Callable[[int], tuple[psutil.Process, Path]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(statsd_port: int) -> tuple[psutil.Process, Path]:
        wanted = tmp_path / "active"
        wanted.write_text("5")
        binary = shutil.which("gunicorn") or str(Path(sys.executable).with_name("gunicorn"))
        env = {**os.environ, "APM_STATSD_ADDRESS": f"127.0.0.1:{statsd_port}", "GAUGE_FILE": str(wanted),
               "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([binary, "-w", str(WORKERS), "-b", f"127.0.0.1:{free_port()}",
                                 "tests.e2e.gauge_app:app"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=open(tmp_path / "gunicorn.log", "wb"))
        procs.append(proc)
        master = psutil.Process(proc.pid)
        deadline = time.monotonic() + GUARD
        while len(_workers(master)) < WORKERS and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_workers(master)) == WORKERS, (tmp_path / "gunicorn.log").read_text()
        return master, wanted

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(GUARD)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_the_sum_over_workers_is_exact_after_each_fault(daemon_factory: Callable[..., Daemon],
                                                        gunicorn: Callable[[int], tuple[psutil.Process, Path]]) -> None:
    port = free_port(socket.SOCK_DGRAM)
    daemon = daemon_factory({"statsd": {"listeners": [f"udp://127.0.0.1:{port}"], "read_buffer": 4096,
                                        "instance_expiry": f"{EXPIRY:g}s"},
                             "collectors": {"host": {"enabled": False}}})
    master, wanted = gunicorn(port)
    assert _settles_at(daemon, 5 * WORKERS) == 5 * WORKERS

    # A worker SIGKILLed: it never says goodbye; gunicorn starts a fresh one (a new instance).
    victim = _workers(master)[0]
    victim.kill()
    killed_at = time.monotonic()
    assert _settles_at(daemon, 5 * WORKERS, not_before=killed_at + EXPIRY + 0.5) == 5 * WORKERS
    assert victim.pid not in [w.pid for w in _workers(master)] and len(_workers(master)) == WORKERS

    # The daemon restarted: it knows nothing until the workers' next flush, which tells it all.
    daemon.stop()
    daemon.start()
    assert _settles_at(daemon, 5 * WORKERS) == 5 * WORKERS

    # Datagrams lost: with the daemon stopped, a flood fills its 4 KiB buffer, then every worker
    # changes its share and the kernel drops the flushes that carry the change.
    assert daemon.proc is not None
    daemon.send_signal(signal.SIGSTOP)
    try:
        flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(200):
            flood.sendto(b"filler:1|c", ("127.0.0.1", port))
        flood.close()
        local = ("127.0.0.1", port)
        flooded = read_drops([local])[local]
        wanted.write_text("7")
        deadline = time.monotonic() + GUARD
        while read_drops([local])[local] < flooded + 2 * WORKERS and time.monotonic() < deadline:
            time.sleep(0.05)
        assert read_drops([local])[local] >= flooded + 2 * WORKERS, "the workers' flushes were not dropped"
    finally:
        daemon.send_signal(signal.SIGCONT)
    assert _settles_at(daemon, 7 * WORKERS) == 7 * WORKERS
