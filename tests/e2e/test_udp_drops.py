"""UDP loss is visible: what the kernel drops for a full receive buffer is exported.

The daemon (or its workers) is stopped with SIGSTOP while a burst arrives, so
the tiny receive buffer overflows for certain; after SIGCONT every datagram
sent is either read (packets_total) or dropped by the kernel (kernel_drops_total),
and the two add up to exactly what was sent.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psutil
import pytest

from tests.support.daemon import Daemon
from tests.support.net import free_port

SENT = 400


@contextmanager
def _stopped(pids: list[int]) -> Iterator[None]:
    for pid in pids:
        psutil.Process(pid).send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            psutil.Process(pid).send_signal(signal.SIGCONT)


def _settled(daemon: Daemon, listener: str, timeout: float = 30.0) -> tuple[float, float]:
    """(packets read, kernel drops) once their sum reaches what was sent (or the time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        packets = daemon.value("apm_exporter_statsd_packets_total", listener=listener) or 0.0
        drops = daemon.value("apm_exporter_statsd_kernel_drops_total", listener=listener) or 0.0
        if packets + drops >= SENT or time.monotonic() > deadline:
            return packets, drops
        time.sleep(0.05)


@pytest.mark.parametrize("workers", [1, 2])
def test_kernel_drops_and_packets_read_add_up_to_what_was_sent(
        daemon_factory: Callable[..., Daemon], workers: int) -> None:
    port = free_port()
    listener = f"udp://127.0.0.1:{port}"
    daemon = daemon_factory({
        "statsd": {"listeners": [listener], "read_buffer": 4096, "udp_workers": workers},
        "collectors": {"host": {"enabled": True}},
    })
    assert daemon.value("apm_exporter_statsd_kernel_drops_total", listener=listener) == 0.0
    host_before = daemon.value("apm_host_udp_receive_buffer_errors_total")
    assert host_before is not None

    assert daemon.proc is not None
    readers = [daemon.proc.pid] if workers == 1 else [c.pid for c in psutil.Process(daemon.proc.pid).children()]
    assert len(readers) == workers
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with _stopped(readers):
        for i in range(SENT):
            sender.sendto(f"drops.burst:1|c|#n:{i % 4}".encode(), ("127.0.0.1", port))
    sender.close()

    packets, drops = _settled(daemon, listener)
    assert drops > 0, "a 4 KiB buffer held every datagram of the burst: the test proves nothing"
    assert packets + drops == SENT
    # What was read is what was stored: one count per datagram.
    stored = sum(daemon.value("drops_burst_total", n=str(n)) or 0.0 for n in range(4))
    assert stored == packets
    # The host-wide figure counts every socket's overflows, ours among them.
    host_after = daemon.value("apm_host_udp_receive_buffer_errors_total")
    assert host_after is not None and host_after - host_before >= drops
