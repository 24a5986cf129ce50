"""Small helpers the host, process and container collectors share for reading /proc and /sys.

These pseudo-files are read with raw os calls: open() plus a buffered reader costs
several times more than the read itself, and a scrape reads dozens of them.
"""

from __future__ import annotations

import os
import time

_CHUNK = 65536


def read_bytes(path: str) -> bytes:
    """The whole file; procfs hands out at most a page or so per read(), so loop."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, _CHUNK)
        if len(data) < 4096:
            return data
        parts = [data]
        while chunk := os.read(fd, _CHUNK):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8", "replace")


def boot_time(proc: str = "/proc") -> float:
    """When the machine booted, in Unix seconds: the zero of a process's start time in ticks.

    Falls back to the clocks' difference where /proc/stat is unreadable or has no btime.
    """
    try:
        for line in read_text(f"{proc}/stat").splitlines():
            if line.startswith("btime "):
                return float(line[6:])
    except OSError:
        pass
    return time.time() - time.monotonic()


def read_optional(path: str) -> str | None:
    """The file's text, or None when it does not exist or may not be read (a normal state, not an error)."""
    try:
        return read_text(path)
    except (FileNotFoundError, NotADirectoryError, PermissionError, ProcessLookupError):
        return None


def key_values(text: str) -> dict[str, int]:
    """Parse `key value` lines (cgroup memory.stat, cpu.stat, memory.events); skips malformed lines."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out
