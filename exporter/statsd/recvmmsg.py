"""Many datagrams a system call: Linux's recvmmsg(2) through ctypes, for the UDP reader.

A `socket.recv` per datagram costs a system call and a release and retake of the
GIL; one call here takes every datagram queued (up to `SLOTS`). While datagrams are
queued it is made holding the GIL (ctypes.PyDLL): a call that released it for the
~30 us a batch takes to copy handed the GIL to a busy render thread at every batch.
Only when the queue is empty does the reader block, with the GIL released (ctypes.CDLL).

After a batch that emptied the queue (fewer than `SLOTS`), the reader naps for `NAP`
seconds before the next call, so that datagrams gather and the next call takes many.
Without the nap, a reader that keeps up wakes about once per datagram (at 720k lines/s in
30-line packets, ~24,000 wake-ups and GIL hand-offs a second); with it, a line cost 4-17%
less CPU at 200k-700k lines/s (bench/reader_cpu.py, BENCHMARKS.md). A nap delays nothing that arrives into an idle socket (the blocking
call returns at once), and at the highest rates the batches are full and nobody naps; the
socket holds a nap's worth of datagrams (0.5 ms of 57,000 datagrams/s: ~66 KB of the buffer).

What it buys depends on the competition for the GIL (bench/receive.py, BENCHMARKS.md).
It reads for less CPU a datagram, and beside a render a second (a scrape's) it keeps a
shorter queue. Beside back-to-back renders at the daemon's 0.5 ms switch interval it
lets the render run ~3x as often, and the reader loses more there than with `recv`.
The 30-minute soak, scraped every second, ran with it.
Python has no recvmmsg of its own (3.11, 3.12).

The slots live in one anonymous mapping: a page is resident only once a datagram
reached it, so 32 slots of 64 KiB cost ~128 KiB for StatsD-sized datagrams.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import socket
import sys
import time

SLOTS = 32
NAP = 0.0005  # seconds to let the queue refill after a batch that emptied it
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
        self._nap = False  # the last batch emptied the queue
        for i, msg in enumerate(self._msgs):
            msg.hdr.iov = ctypes.pointer(self._iovecs[i])
            msg.hdr.iovlen = 1

    def receive(self) -> list[bytes]:
        """Block until at least one datagram is queued, then take all queued (up to the slots).

        After a shutdown, the batch is one empty datagram (as `recv` returns b"")."""
        fd = self._sock.fileno()
        if self._nap:
            time.sleep(NAP)  # the GIL released, datagrams gather
        got = self._take(fd, self._msgs, self._slots, MSG_DONTWAIT, None)
        while got < 0:
            code = ctypes.get_errno()
            if code not in (errno.EAGAIN, errno.EINTR):
                raise OSError(code, errno.errorcode.get(code, str(code)))
            got = self._wait(fd, self._msgs, self._slots, MSG_WAITFORONE, None)
        self._nap = got < self._slots
        view, size, msgs = self._map, self._size, self._msgs
        return [view[i * size:i * size + msgs[i].len] for i in range(got)]

    def close(self) -> None:
        """Unmap the slots (after the reader has stopped)."""
        del self._msgs, self._iovecs, self._anchor
        self._map.close()


def batch_receiver(sock: socket.socket, size: int) -> BatchReceiver | None:
    """A BatchReceiver where recvmmsg exists (Linux), else None (the caller keeps `recv`)."""
    return BatchReceiver(sock, size) if _RECVMMSG is not None and _RECVMMSG_HELD is not None else None
