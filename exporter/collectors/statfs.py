"""statvfs of every mount under one deadline, so a hung mount costs only its own figures.

A statfs on a dead NFS server (or a FUSE daemon that stopped answering) blocks in
the kernel, for an NFS hard mount uninterruptibly. So the calls run on a
long-lived daemon thread, not on the collector's: one hand-off per scrape for all
mounts (a thread per mount per scrape cost more than the calls themselves). When a
call has not answered within HEDGE seconds, another thread takes the mounts still
waiting behind it, so one slow mount does not hold up the rest. A call still
running at the deadline marks its mountpoint stuck, and a stuck mountpoint is not
asked again (it is reported as an error) until that call returns, so a dead mount
holds one thread, never one per scrape. This is node_exporter's stuck-mounts set;
the threads are daemon threads so that a shutdown never waits on a dead mount.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from typing import NamedTuple

# Threads for statfs calls; each stuck mount holds one until its call returns.
WORKERS = 8
# A call slower than this (healthy local or network filesystems answer in microseconds to
# milliseconds) may be hung: the mounts behind it go to another thread (at most a quarter of the deadline).
HEDGE = 0.05

Statvfs = os.statvfs_result


class Result(NamedTuple):
    """A mount's statvfs, or why there is none (`stuck`: no answer within the deadline, or still none)."""

    stat: Statvfs | None
    stuck: bool = False
    error: OSError | None = None


class _Batch:
    """The mounts of one scrape, taken one by one by whichever threads work on it."""

    def __init__(self, mounts: list[tuple[str, str]]) -> None:
        self.todo = deque(mounts)  # (mountpoint, path) no thread has taken yet
        self.running: set[str] = set()  # mountpoints whose call has not returned
        self.results: dict[str, Result] = {}
        self.progress_at = time.monotonic()  # when a call last started or returned
        self.open = True  # false once the caller stopped waiting: take nothing more


class StatfsPool:
    def __init__(self, workers: int = WORKERS) -> None:
        self.workers = workers
        self._jobs: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a batch
        self._queued = 0  # batches put on the queue that no thread has taken yet
        self._stuck: set[str] = set()  # mountpoints whose call has not returned yet

    @property
    def stuck(self) -> set[str]:
        with self._cond:
            return set(self._stuck)

    def stat(self, mounts: list[tuple[str, str]], timeout: float) -> dict[str, Result]:
        """statvfs(path) for each (mountpoint, path), all within `timeout` seconds together."""
        out: dict[str, Result] = {}
        deadline = time.monotonic() + timeout
        hedge = min(HEDGE, timeout / 4)
        with self._cond:
            todo = []
            for mountpoint, path in mounts:
                if mountpoint in self._stuck:
                    out[mountpoint] = Result(None, stuck=True)
                else:
                    todo.append((mountpoint, path))
            if not todo:
                return out
            batch = _Batch(todo)
            helpers = 0
            while True:
                if not batch.todo and not batch.running:
                    break
                now = time.monotonic()
                if now >= deadline:
                    break
                # A first thread, or another one when the calls under way look hung.
                if batch.todo and (helpers == 0 or now - batch.progress_at >= hedge):
                    if self._enlist(batch):
                        helpers += 1
                        batch.progress_at = now
                    elif helpers == 0:
                        break  # every thread waits on a hung mount: do not wait for one of them
                wake = deadline if not batch.todo else min(deadline, batch.progress_at + hedge)
                self._cond.wait(max(0.0, wake - now))
            batch.open = False
            out.update(batch.results)
            for mountpoint in batch.running:
                self._stuck.add(mountpoint)
                out[mountpoint] = Result(None, stuck=True)
            for mountpoint, _ in batch.todo:
                why = ("every statfs thread waits on a hung mount" if helpers == 0
                       else f"statfs not reached within {timeout:g}s")
                out[mountpoint] = Result(None, error=OSError(why))
        return out

    def _enlist(self, batch: _Batch) -> bool:
        """Put one more thread on the batch (under the lock); False when every thread is held."""
        if self._idle <= self._queued:  # no idle thread is left over for this batch
            if len(self._threads) >= self.workers:
                return False
            thread = threading.Thread(target=self._work, name="statfs", daemon=True)
            self._threads.append(thread)
            thread.start()
        self._queued += 1
        self._jobs.put(batch)
        return True

    def _work(self) -> None:
        while True:
            with self._cond:
                self._idle += 1
            batch = self._jobs.get()
            with self._cond:
                self._idle -= 1
                if batch is not None:
                    self._queued -= 1
            if batch is None:
                return
            self._run(batch)

    def _run(self, batch: _Batch) -> None:
        while True:
            with self._cond:
                if not batch.open or not batch.todo:
                    return
                mountpoint, path = batch.todo.popleft()
                batch.running.add(mountpoint)
                batch.progress_at = time.monotonic()
            try:
                result = Result(os.statvfs(path))
            except OSError as err:
                result = Result(None, error=err)
            except BaseException as err:  # handed to the caller, which reports the mount
                result = Result(None, error=OSError(str(err)))
            with self._cond:
                batch.running.discard(mountpoint)
                batch.results[mountpoint] = result
                batch.progress_at = time.monotonic()
                self._stuck.discard(mountpoint)  # a call that hung has returned: ask it again
                if not batch.todo and not batch.running:
                    self._cond.notify_all()

    def close(self, wait_seconds: float = 1.0) -> None:
        """Stop the threads; one held by a dead mount exits when its call returns (or with the process)."""
        with self._cond:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._jobs.put(None)
        deadline = time.monotonic() + wait_seconds
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
