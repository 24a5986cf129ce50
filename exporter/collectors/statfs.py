"""statvfs of every mount under one deadline, so a hung mount costs only its own figures.

A statfs on a dead NFS server (or a FUSE daemon that stopped answering) blocks in
the kernel, for an NFS hard mount uninterruptibly. The calls run on a few daemon
threads; a call still running at the deadline marks its mountpoint stuck, and a
stuck mountpoint is not asked again (it is reported as an error) until that call
returns, so a dead mount holds one thread, never one per scrape. This is
node_exporter's stuck-mounts set; the threads are daemon threads so that a
shutdown never waits on a dead mount.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from typing import NamedTuple

# Threads for statfs calls; each stuck mount holds one until its call returns.
WORKERS = 8

Statvfs = os.statvfs_result


class Result(NamedTuple):
    """A mount's statvfs, or why there is none (`stuck`: no answer within the deadline, or still none)."""

    stat: Statvfs | None
    stuck: bool = False
    error: OSError | None = None


class StatfsPool:
    def __init__(self, workers: int = WORKERS) -> None:
        self.workers = workers
        self._jobs: queue.SimpleQueue[tuple[str, Future[Statvfs]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a job
        self._queued = 0  # jobs no thread has taken yet
        self._stuck: set[str] = set()  # mountpoints whose call has not returned yet

    @property
    def stuck(self) -> set[str]:
        with self._lock:
            return set(self._stuck)

    def stat(self, mounts: list[tuple[str, str]], timeout: float) -> dict[str, Result]:
        """statvfs(path) for each (mountpoint, path), all within `timeout` seconds together."""
        out: dict[str, Result] = {}
        pending: dict[str, Future[Statvfs]] = {}
        for mountpoint, path in mounts:
            with self._lock:
                stuck = mountpoint in self._stuck
                full = len(self._stuck) >= self.workers  # every thread waits on a dead mount
            if stuck:
                out[mountpoint] = Result(None, stuck=True)
            elif full:
                out[mountpoint] = Result(None, error=OSError("every statfs thread waits on a hung mount"))
            else:
                pending[mountpoint] = self._submit(path)
        wait(pending.values(), timeout=timeout)
        for mountpoint, future in pending.items():
            if future.cancel():  # still queued behind slow calls: not stuck itself, just not reached
                out[mountpoint] = Result(None, error=OSError(f"statfs not reached within {timeout:g}s"))
                continue
            with self._lock:
                if not future.done():
                    self._stuck.add(mountpoint)
                    future.add_done_callback(self._unstick(mountpoint))
                    out[mountpoint] = Result(None, stuck=True)
                    continue
            error = future.exception()
            if error is None:
                out[mountpoint] = Result(future.result())
            else:
                out[mountpoint] = Result(None, error=error if isinstance(error, OSError) else OSError(str(error)))
        return out

    def _unstick(self, mountpoint: str) -> Callable[[Future[Statvfs]], None]:
        def done(_: Future[Statvfs]) -> None:
            with self._lock:
                self._stuck.discard(mountpoint)
        return done

    def _submit(self, path: str) -> Future[Statvfs]:
        future: Future[Statvfs] = Future()
        with self._lock:
            self._queued += 1
            self._jobs.put((path, future))
            # A call must not wait behind another one, which may be the hung one.
            if self._idle < self._queued and len(self._threads) < self.workers:
                thread = threading.Thread(target=self._work, name="statfs", daemon=True)
                self._threads.append(thread)
                thread.start()
        return future

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            job = self._jobs.get()
            with self._lock:
                self._idle -= 1
                if job is not None:
                    self._queued -= 1
            if job is None:
                return
            path, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(os.statvfs(path))
            except BaseException as err:  # handed to the caller, which reports the mount
                future.set_exception(err)

    def close(self, wait_seconds: float = 1.0) -> None:
        """Stop the threads; one held by a dead mount exits when its call returns (or with the process)."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._jobs.put(None)
        deadline = time.monotonic() + wait_seconds
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
