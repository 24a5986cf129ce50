"""recvmmsg batches over real sockets: every datagram whole and in order, and a clean stop."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from exporter.statsd.listener import MAX_DATAGRAM, DatagramListener, _set_read_buffer
from exporter.statsd.recvmmsg import (
    BUFFER_SHARE,
    CHARGE,
    NAP_MAX,
    NAP_MIN,
    PEAK,
    SLOTS,
    batch_receiver,
    nap_for,
)
from exporter.statsd.stats import StatsdStats
from exporter.store import Store

pytestmark = pytest.mark.skipif(batch_receiver(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), 1) is None,
                                reason="recvmmsg is Linux's")


def test_queued_datagrams_come_back_whole_and_in_order() -> None:
    # More than a batch of slots, of sizes from empty to near UDP's largest, so a wrong
    # offset, length or count shows as a datagram changed, lost or out of place.
    sizes = [0, 1, 60_000, 17, 4096, 4097, 1224] * (2 * SLOTS // 7 + 1)
    sent = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        rx.bind(("127.0.0.1", 0))
        tx.connect(rx.getsockname())
        for data in sent:
            tx.send(data)
        receiver = batch_receiver(rx, MAX_DATAGRAM)
        assert receiver is not None
        got: list[bytes] = []
        batches = 0
        while len(got) < len(sent):
            got.extend(receiver.receive())
            batches += 1
        receiver.close()
    assert got == sent
    assert batches < len(sent)  # batches, not one datagram a call


class Collect:
    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self.done = threading.Event()

    def handle_packet(self, data: bytes) -> None:
        self.packets.append(data)
        if data == b"last:1|c":
            self.done.set()


def test_listener_counts_every_datagram_and_stops_when_closed_while_blocked() -> None:
    stats = StatsdStats(Store())
    sink = Collect()
    listener = DatagramListener("udp://127.0.0.1:0", sink, stats.listener("udp"), read_buffer=4 << 20)
    listener.open()
    lines = [b"n:%d|c" % i for i in range(3 * SLOTS)] + [b"", b"last:1|c"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for data in lines:
            tx.sendto(data, ("127.0.0.1", listener.port))
    assert sink.done.wait(30)
    assert sink.packets == [d for d in lines if d]  # the empty datagram is skipped, nothing else
    assert stats.listener("udp").packets.value == len(lines) - 1
    thread = listener._thread
    assert thread is not None and thread.is_alive()  # now blocked in recvmmsg: nothing is queued
    listener.close()
    assert not thread.is_alive()


@pytest.mark.parametrize("read_buffer", [None, 4096, 65536, 1 << 20, 16 << 20])
def test_a_nap_fills_at_most_a_third_of_the_buffer_and_big_buffers_nap_longest(read_buffer: int | None) -> None:
    # The nap is bounded by what the socket can hold: a fixed long nap would overflow the
    # kernel's default buffer at the rates one reader takes, a fixed short one wakes a reader
    # with a big buffer for every few datagrams.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        _set_read_buffer(sock, read_buffer, "test")  # as the daemon does: past rmem_max where it may
        limit = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)  # what the kernel charges against
        nap = nap_for(sock)
    assert nap == 0.0 or NAP_MIN <= nap <= NAP_MAX  # none where it would be too short to pay
    assert nap * PEAK * CHARGE <= limit / 3 + 1e-6
    if limit * BUFFER_SHARE / CHARGE / PEAK >= NAP_MAX:
        assert nap == NAP_MAX


def test_a_unix_datagram_socket_naps_only_within_its_queue_length(tmp_path: Path) -> None:
    # A unixgram socket queues at most net.unix.max_dgram_qlen datagrams whatever its buffer;
    # a nap sized by the buffer alone would fill that queue and make non-blocking clients drop.
    qlen = int(Path("/proc/sys/net/unix/max_dgram_qlen").read_text())
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind(str(tmp_path / "statsd.sock"))
        nap = nap_for(sock)
    assert nap * PEAK <= qlen * BUFFER_SHARE + 1e-6
    assert nap == 0.0 or nap >= NAP_MIN
