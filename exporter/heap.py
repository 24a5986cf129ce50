"""The heap a long-running process keeps: freed memory handed back to the OS (glibc's
malloc_trim), for the daemon and the StatsD expiry, and start-up's objects kept out of
full garbage collections, for the daemon and the StatsD worker processes.

glibc keeps freed memory in its heaps, one per thread that allocated, each at its
high-water mark: after start-up, after a big expiry and under steady load (renders on
one thread, collects on another) the RSS would otherwise stay at its peak (issue 15's
soak, bench/series_memory.py). This module imports ctypes on the first trim, not on import.
"""

from __future__ import annotations

import gc


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


def freeze_startup_heap() -> None:
    """Leave what start-up (or a reload) built out of every later full garbage collection.

    A full collection walks every tracked object while holding the GIL, and the modules,
    schema and config the daemon loaded are most of them: 55,000 objects, a 22 ms pass on a
    quiet core and up to 73 ms under load, during which the StatsD reader thread cannot
    run and the socket buffer fills (the soak's drops, issue 15). Frozen, a full pass walks
    the ~15,000 objects made since (1.4 ms). Unfrozen and collected first, so that what a
    reload left behind (the old collectors) is freed rather than kept forever.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
