"""Clock synchronisation state from the kernel's NTP discipline: adjtimex(2) in read-only mode.

Python has no binding: `time.clock_gettime` reads the clock but not whether an NTP or PTP
daemon keeps it in step, nor its error bounds, which only adjtimex(2) returns (what
node_exporter's timex collector reads). So libc's adjtimex is called through ctypes (which
the daemon imports anyway) with modes 0, which changes nothing and needs no privilege.
The clock is the host's kernel's, shared by every container: proc_root does not apply.
On a libc without adjtimex (not Linux) the figures are simply absent.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any, NamedTuple

TIME_ERROR = 5  # adjtimex's return when the clock is not synchronised (STA_UNSYNC and the like)
STA_NANO = 0x2000  # offset in nanoseconds rather than microseconds


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """struct timex of <sys/timex.h>; the trailing padding is the kernel's reserved words."""

    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time", _Timeval), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long),
                ("jitter", ctypes.c_long), ("shift", ctypes.c_int), ("stabil", ctypes.c_long),
                ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long),
                ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int), ("_reserved", ctypes.c_int * 11)]


class Clock(NamedTuple):
    synchronised: bool
    offset: float  # seconds the kernel still has to slew the clock by
    max_error: float  # seconds: the kernel's upper bound of the clock's error (16 s when unsynchronised)
    estimated_error: float  # seconds


def clock(state: int, status: int, offset: int, max_error_us: int, estimated_error_us: int) -> Clock:
    """Seconds from adjtimex's fields, whose offset unit depends on STA_NANO."""
    return Clock(state != TIME_ERROR, offset / (1e9 if status & STA_NANO else 1e6),
                 max_error_us / 1e6, estimated_error_us / 1e6)


def _adjtimex() -> Callable[[Any], int] | None:
    try:
        function = ctypes.CDLL(None, use_errno=True).adjtimex
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.POINTER(_Timex)]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


_ADJTIMEX = _adjtimex()


def read_clock() -> Clock | None:
    """The kernel's clock state now; None where there is no adjtimex or it fails."""
    if _ADJTIMEX is None:
        return None
    tx = _Timex()  # modes 0: read only
    state = _ADJTIMEX(ctypes.byref(tx))
    if state < 0:
        raise OSError(ctypes.get_errno(), "adjtimex failed")
    return clock(state, tx.status, tx.offset, tx.maxerror, tx.esterror)
