"""Handing freed heap back to the OS (glibc's malloc_trim), for the daemon and the StatsD expiry.

glibc keeps freed memory in its heaps, one per thread that allocated, each at its
high-water mark: after start-up, after a big expiry and under steady load (renders on
one thread, collects on another) the RSS would otherwise stay at its peak (issue 15's
soak, bench/series_memory.py). ctypes is imported on the first call, never at start-up.
"""

from __future__ import annotations


def release_free_heap() -> None:
    """malloc_trim(0): the free pages of every arena back to the OS; nothing without glibc.

    It walks every arena (a few ms on a big heap) and, through ctypes, without the GIL:
    callers on the event loop run it in a thread.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
