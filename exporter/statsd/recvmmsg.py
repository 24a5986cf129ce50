"""Many datagrams a system call: Linux's recvmmsg(2) through ctypes, for the UDP reader.

A `socket.recv` per datagram costs a system call and a release and retake of the
GIL; one call here takes every datagram queued (up to `SLOTS`). While datagrams are
queued it is made holding the GIL (ctypes.PyDLL): a call that released it for the
~30 us a batch takes to copy handed the GIL to a busy render thread at every batch.
Only when the queue is empty does the reader block, with the GIL released (ctypes.CDLL).

After a batch that emptied the queue (fewer than the slots), the reader naps before the
next call, so that datagrams gather and the next call takes many. Without the nap, a reader
that keeps up wakes about once per datagram (at 720k lines/s in 30-line packets, ~24,000
wake-ups and GIL hand-offs a second), and on a virtual machine a wake-up costs more than the
system call: a vCPU that idled between datagrams ran the next ones ~30% dearer a line
(measured with and without a SCHED_IDLE spinner on the reader's CPU, BENCHMARKS.md). So the
nap is as long as the socket's buffer allows: the time in which a third of the buffer fills
at `PEAK` datagrams a second (about the most one reader takes), at most `NAP_MAX`. The
kernel's default 208 KiB buffer gives ~0.5 ms; a `read_buffer` of 1 MiB or more (a busy
daemon's, docs/statsd.md) gives `NAP_MAX`. A nap delays nothing that arrives into an idle socket (the
blocking call returns at once), and at the highest rates the batches are full and nobody naps.

What it buys depends on the competition for the GIL (bench/receive.py, BENCHMARKS.md).
It reads for less CPU a datagram, and beside a render a second (a scrape's) it keeps a
shorter queue. Beside back-to-back renders at the daemon's 0.5 ms switch interval it
lets the render run ~3x as often, and the reader loses more there than with `recv`.
The 30-minute soak, scraped every second, ran with it.
Python has no recvmmsg of its own (3.11, 3.12).

The slots live in one anonymous mapping: a page is resident only once a datagram
reached it, so 64 slots of 64 KiB cost ~256 KiB for StatsD-sized datagrams.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import socket
import sys
import time
from pathlib import Path

SLOTS = 64  # a full NAP_MAX's worth at ~12,000 datagrams/s; more in one call only at higher rates
NAP_MAX = 0.005  # seconds: the longest a datagram then waits, nothing beside a scrape interval
PEAK = 60_000  # datagrams/s: about the most one reader takes (bench/ingest.py), to bound the nap
CHARGE = 2304  # bytes the kernel charges the buffer for a StatsD datagram of 1,000-1,400 bytes
BUFFER_SHARE = 1 / 3  # of the receive buffer, the most a nap lets fill at PEAK
NAP_MIN = 0.0001  # a shorter nap saves less than its own wake-up costs: none instead
MSG_DONTWAIT = 0x40
MSG_WAITFORONE = 0x10000  # block for the first datagram, then take only what is queued


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(_Iovec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", _Msghdr), ("len", ctypes.c_uint)]


def _libc_recvmmsg(library: type[ctypes.CDLL]) -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """libc's recvmmsg, called through `library`: CDLL releases the GIL during the call, PyDLL keeps it."""
    if sys.platform != "linux":
        return None
    try:
        func = library(None, use_errno=True).recvmmsg
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.POINTER(_Mmsghdr), ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    func.restype = ctypes.c_int
    return func


_RECVMMSG = _libc_recvmmsg(ctypes.CDLL)  # blocking, without the GIL
_RECVMMSG_HELD = _libc_recvmmsg(ctypes.PyDLL)  # what is queued, holding the GIL


class BatchReceiver:
    """Reads a blocking datagram socket a batch at a time; `receive()` returns the datagrams."""

    def __init__(self, sock: socket.socket, size: int, slots: int = SLOTS) -> None:
        assert _RECVMMSG is not None and _RECVMMSG_HELD is not None
        self._wait, self._take = _RECVMMSG, _RECVMMSG_HELD
        self._sock = sock
        self._size = size
        self._slots = slots
        self._map = mmap.mmap(-1, size * slots)
        self._anchor = ctypes.c_char.from_buffer(self._map)  # holds the mapping's buffer while in use
        base = ctypes.addressof(self._anchor)
        self._iovecs = (_Iovec * slots)(*[_Iovec(base + i * size, size) for i in range(slots)])
        self._msgs = (_Mmsghdr * slots)()
        self.nap = nap_for(sock)
        self._emptied = False  # the last batch emptied the queue: nap before the next
        for i, msg in enumerate(self._msgs):
            msg.hdr.iov = ctypes.pointer(self._iovecs[i])
            msg.hdr.iovlen = 1

    def receive(self) -> list[bytes]:
        """Block until at least one datagram is queued, then take all queued (up to the slots).

        After a shutdown, the batch is one empty datagram (as `recv` returns b"")."""
        fd = self._sock.fileno()
        if self._emptied and self.nap:
            time.sleep(self.nap)  # the GIL released, datagrams gather
        got = self._take(fd, self._msgs, self._slots, MSG_DONTWAIT, None)
        while got < 0:
            code = ctypes.get_errno()
            if code not in (errno.EAGAIN, errno.EINTR):
                raise OSError(code, errno.errorcode.get(code, str(code)))
            got = self._wait(fd, self._msgs, self._slots, MSG_WAITFORONE, None)
        self._emptied = got < self._slots
        view, size, msgs = self._map, self._size, self._msgs
        return [view[i * size:i * size + msgs[i].len] for i in range(got)]

    def close(self) -> None:
        """Unmap the slots (after the reader has stopped)."""
        del self._msgs, self._iovecs, self._anchor
        self._map.close()


def nap_for(sock: socket.socket) -> float:
    """Seconds to nap after a batch that emptied `sock`'s queue: what its buffer allows (above).

    A unix datagram socket also queues at most net.unix.max_dgram_qlen datagrams (10 by
    default), whatever its buffer; a sender then blocks or, non-blocking (DogStatsD's
    clients), drops, so such a socket naps only if that queue is long."""
    # Linux reports the doubled value, which is the limit the kernel charges datagrams against.
    capacity = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) / CHARGE  # datagrams
    if sock.family == socket.AF_UNIX:
        capacity = min(capacity, _unix_queue_length())
    nap = min(NAP_MAX, BUFFER_SHARE * capacity / PEAK)
    return nap if nap >= NAP_MIN else 0.0


def _unix_queue_length() -> int:
    try:
        return int(Path("/proc/sys/net/unix/max_dgram_qlen").read_text())
    except (OSError, ValueError):
        return 10  # the kernel's default


def batch_receiver(sock: socket.socket, size: int) -> BatchReceiver | None:
    """A BatchReceiver where recvmmsg exists (Linux), else None (the caller keeps `recv`)."""
    return BatchReceiver(sock, size) if _RECVMMSG is not None and _RECVMMSG_HELD is not None else None
