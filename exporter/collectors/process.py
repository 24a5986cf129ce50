"""Process groups: what a sidecar reports about the app next to it.

Each group matches processes by name regex, command-line regex or pidfile and
reports their summed CPU, memory (resident, proportional, swapped), threads, fds,
I/O, context switches and major page faults, how many are in each state (zombie,
uninterruptible …), and the worst ratio of open fds to a process's limit. The costly part of any
process collector is looking at every pid; here a pid's match is decided when it
first appears (and once more on the next scrape, in case it was caught between
fork and exec), then cached until the pid goes, with a full re-match every
minute. Matched processes cost seven small reads each per scrape: /proc/<pid>/stat
(CPU, state, faults, threads, start time), statm (memory), status (context
switches, swap), smaps_rollup (proportional memory; `pss: false` skips it, as the
kernel walks the page tables for it), limits (the fd limit), io and the fd directory.

/proc is read directly rather than through psutil.Process: psutil reads the same
files plus status, costs more per call, and its cached Process objects do not notice
a reused pid; here the start time in stat tells a reused pid from the process that had it.

Counters (CPU, I/O, context switches, faults) include the last values of the group's processes that have
exited, so a worker that restarts does not make the group's counter go backwards.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from typing import NamedTuple

from pydantic import Field, field_validator, model_validator

from exporter import families as F
from exporter.collectors._procfs import boot_time, read_bytes, read_optional, read_text
from exporter.model import Family
from exporter.schema import CollectorConfig, Regex, Section, unique_names
from exporter.statelog import StateLog

log = logging.getLogger(__name__)

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_COMM_MAX = 15  # the kernel truncates a process name to 15 bytes
# Backstop for a pid that was reused, or exec'd into a match, between two scrapes.
RESCAN_SECONDS = 60.0
_GONE = (FileNotFoundError, ProcessLookupError, NotADirectoryError)


class Group(Section):
    """One group: a label value and exactly one way to find its processes."""

    name: str = Field(min_length=1, max_length=128)
    # Unanchored regexes (anchor with ^ and $): the process name (comm, completed from argv[0]
    # when the kernel truncated it), or the command line with arguments joined by spaces.
    name_regex: Regex | None = None
    cmdline_regex: Regex | None = None
    # A file holding the pid (as written by most daemons); missing or stale means 0 processes.
    pidfile: str | None = None

    @model_validator(mode="after")
    def _one_matcher(self) -> Group:
        given = [k for k in ("name_regex", "cmdline_regex", "pidfile") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"group {self.name!r}: set exactly one of name_regex, cmdline_regex, pidfile"
                             f" (got {', '.join(given) or 'none'})")
        return self


class Config(CollectorConfig):
    proc_root: str = "/proc"
    groups: list[Group] = Field(default_factory=list)
    # Proportional resident memory from smaps_rollup (the costliest read per process).
    pss: bool = True

    @field_validator("groups")
    @classmethod
    def _unique_names(cls, groups: list[Group]) -> list[Group]:
        return unique_names(groups, "group")


# --- pure parsers ---------------------------------------------------------------------------


class PidStat(NamedTuple):
    comm: str
    user_ticks: int
    system_ticks: int
    threads: int
    start_ticks: int  # since boot
    vms_bytes: int
    rss_pages: int
    state: str = ""  # R, S, D, Z, T, t, X, I (proc(5))
    major_faults: int = 0


def parse_pid_stat(text: str) -> PidStat:
    """/proc/<pid>/stat. The name may hold spaces and parentheses, so split at the last ')'."""
    head, _, tail = text.rpartition(")")
    comm = head.partition("(")[2]
    f = tail.split()  # f[0] is field 3 (state): field n is f[n - 3]
    return PidStat(comm, int(f[11]), int(f[12]), int(f[17]), int(f[19]), int(f[20]), int(f[21]), f[0], int(f[9]))


# proc(5) state letters as label values; the first five are always exported (zeros included).
STATES = {"R": "running", "S": "sleeping", "D": "disk_sleep", "Z": "zombie", "T": "stopped",
          "t": "tracing_stop", "X": "dead", "I": "idle"}
_ALWAYS_STATES = ("running", "sleeping", "disk_sleep", "zombie", "stopped")


class PidStatus(NamedTuple):
    voluntary_switches: int
    involuntary_switches: int
    swap_bytes: int


def parse_pid_status(text: str) -> PidStatus:
    """Context switches and VmSwap from /proc/<pid>/status (VmSwap is absent for kernel threads and zombies)."""
    values = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def number(key: str) -> int:
        return int(values.get(key, "0").split()[0] or 0)

    return PidStatus(number("voluntary_ctxt_switches"), number("nonvoluntary_ctxt_switches"),
                     number("VmSwap") * 1024)


def parse_smaps_rollup_pss(text: str) -> int:
    """Bytes of proportional set size (Pss) from /proc/<pid>/smaps_rollup."""
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    raise ValueError("no Pss line")


def parse_fd_limit(text: str) -> int | None:
    """The soft `Max open files` limit from /proc/<pid>/limits; None when unlimited."""
    for line in text.splitlines():
        if line.startswith("Max open files"):
            soft = line[len("Max open files"):].split()[0]
            return int(soft) if soft.isdigit() else None
    return None


def parse_statm(text: str) -> tuple[int, int]:
    """(virtual, resident) pages from /proc/<pid>/statm."""
    size, resident = text.split()[:2]
    return int(size), int(resident)


def parse_pid_io(text: str) -> tuple[int, int]:
    """(read_bytes, write_bytes) from /proc/<pid>/io: bytes that reached storage, not rchar/wchar."""
    values = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    return int(values["read_bytes"]), int(values["write_bytes"])


def parse_pidfile(text: str) -> int | None:
    token = text.strip().split("\n", 1)[0].strip()
    return int(token) if token.isdigit() and int(token) > 0 else None


def parse_cmdline(raw: bytes) -> str:
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")


def process_name(comm: str, cmdline: str | None) -> str:
    """comm, or argv[0]'s basename when comm was truncated and argv[0] extends it (psutil does the same)."""
    if len(comm) >= _COMM_MAX and cmdline:
        base = os.path.basename(cmdline.split(" ", 1)[0])
        if base.startswith(comm):
            return base
    return comm


# --- the collector ----------------------------------------------------------------------------


class _Known:
    """What is decided about a pid: the regex groups it belongs to, and when it started."""

    __slots__ = ("groups", "looks", "start")

    def __init__(self, groups: tuple[int, ...], looks: int) -> None:
        self.groups = groups
        self.start: int | None = None
        self.looks = looks


class _Sample(NamedTuple):
    user: float
    system: float
    rss: int
    vms: int
    threads: int
    start: int
    fds: int | None
    read: int | None
    written: int | None
    state: str = ""
    major_faults: int = 0
    voluntary: int = 0
    involuntary: int = 0
    swap: int = 0
    pss: int | None = None
    fd_limit: int | None = None

    def counters(self) -> tuple[float, ...]:
        """What the group's counters sum, in the order of _COUNTERS; kept for processes that exit."""
        return (self.user, self.system, self.read or 0, self.written or 0, self.major_faults, self.voluntary,
                self.involuntary)


_COUNTERS = 7


class ProcessCollector:
    def __init__(self, config: Config) -> None:
        self._proc = config.proc_root.rstrip("/") or "/"
        self._groups = config.groups
        self._name_res = [(i, re.compile(g.name_regex)) for i, g in enumerate(config.groups) if g.name_regex]
        self._cmd_res = [(i, re.compile(g.cmdline_regex)) for i, g in enumerate(config.groups) if g.cmdline_regex]
        self._pidfiles = [(i, g.pidfile) for i, g in enumerate(config.groups) if g.pidfile]
        self._known: dict[int, _Known] = {}
        self._next_rescan = 0.0
        # Last counters per (group, pid, start) and the sums left by processes that exited.
        self._last: dict[tuple[int, int, int], tuple[float, ...]] = {}
        self._gone = [[0.0] * _COUNTERS for _ in config.groups]
        self._pss = config.pss
        self._boot_time = boot_time(self._proc)
        self._pidfiles_log = StateLog(log, "pidfile does not hold a pid", None)
        # A read of /proc/<pid>/cmdline can block while that process's memory map is locked;
        # a scrape that finds the previous one still stuck fails fast instead of queueing behind it.
        self._lock = threading.Lock()

    async def collect(self) -> list[Family]:
        if not self._groups:
            return []
        return await asyncio.to_thread(self._collect)

    async def close(self) -> None:
        return None

    def _collect(self) -> list[Family]:
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("the previous process scan has not finished (a process's /proc entry is hanging)")
        try:
            return self._collect_locked()
        finally:
            self._lock.release()

    def _collect_locked(self) -> list[Family]:
        members: list[list[int]] = [[] for _ in self._groups]
        samples: dict[int, _Sample | None] = {}
        if self._name_res or self._cmd_res:
            self._scan()
            for pid, known in list(self._known.items()):
                if not known.groups:
                    continue
                sample = samples[pid] = self._sample(pid)
                if sample is None:
                    continue
                if known.start is None:
                    known.start = sample.start
                elif known.start != sample.start:  # the pid now belongs to another process
                    known = self._known[pid] = _Known(self._match(pid) or (), 1)
                    known.start = sample.start
                for g in known.groups:
                    members[g].append(pid)
        for g, path in self._pidfiles:
            file_pid = self._pid_from_file(g, path)
            if file_pid is not None:
                if file_pid not in samples:
                    samples[file_pid] = self._sample(file_pid)
                if samples[file_pid] is not None:
                    members[g].append(file_pid)
        return self._families(members, samples)

    def _scan(self) -> None:
        now = time.monotonic()
        rescan = now >= self._next_rescan
        if rescan:
            self._next_rescan = now + RESCAN_SECONDS
        known = self._known
        current: dict[int, _Known] = {}
        for entry in os.listdir(self._proc):
            if not entry.isdigit():
                continue
            pid = int(entry)
            k = known.get(pid)
            if k is None or rescan or k.looks < 2:
                groups = self._match(pid)
                if groups is None:  # exited while we looked
                    continue
                if k is None or (rescan and groups != k.groups):
                    k = _Known(groups, 1)
                else:
                    k.groups = groups
                    k.looks += 1
            current[pid] = k
        self._known = current

    def _match(self, pid: int) -> tuple[int, ...] | None:
        """The regex groups this pid belongs to; None if it has gone."""
        base = f"{self._proc}/{pid}"
        cmdline: str | None = None
        matched: list[int] = []
        try:
            if self._cmd_res:
                cmdline = parse_cmdline(read_bytes(f"{base}/cmdline"))
                matched += [g for g, rx in self._cmd_res if rx.search(cmdline)]
            if self._name_res:
                comm = parse_pid_stat(read_text(f"{base}/stat")).comm
                if len(comm) >= _COMM_MAX and cmdline is None:
                    cmdline = parse_cmdline(read_bytes(f"{base}/cmdline"))
                name = process_name(comm, cmdline)
                matched += [g for g, rx in self._name_res if rx.search(name)]
        except _GONE:
            return None
        except (PermissionError, ValueError, IndexError):
            return ()
        return tuple(sorted(matched))

    def _sample(self, pid: int) -> _Sample | None:
        base = f"{self._proc}/{pid}"
        try:
            st = parse_pid_stat(read_text(f"{base}/stat"))
            # RSS from statm, not stat: since Linux 6.x stat shows the per-CPU-cached approximation
            # (measured here: 10% low for a fresh process), statm the exact sum, as VmRSS and psutil.
            vms_pages, rss_pages = parse_statm(read_text(f"{base}/statm"))
        except (*_GONE, PermissionError, ValueError, IndexError):
            return None
        try:
            fds: int | None = len(os.listdir(f"{base}/fd"))
        except OSError:  # not ours to read (or gone): counted as unknown, not as zero
            fds = None
        io = read_optional(f"{base}/io")
        read = written = None
        if io:
            try:
                read, written = parse_pid_io(io)
            except (KeyError, ValueError):
                pass
        status = PidStatus(0, 0, 0)
        if text := read_optional(f"{base}/status"):
            try:
                status = parse_pid_status(text)
            except ValueError:
                pass
        pss = None
        if self._pss and (text := read_optional(f"{base}/smaps_rollup")):
            try:
                pss = parse_smaps_rollup_pss(text)
            except (ValueError, IndexError):
                pass
        limits = read_optional(f"{base}/limits")
        return _Sample(st.user_ticks / _CLK_TCK, st.system_ticks / _CLK_TCK, rss_pages * _PAGE_SIZE,
                       vms_pages * _PAGE_SIZE, st.threads, st.start_ticks, fds, read, written, st.state,
                       st.major_faults, status.voluntary_switches, status.involuntary_switches, status.swap_bytes,
                       pss, parse_fd_limit(limits) if limits else None)

    def _pid_from_file(self, group: int, path: str) -> int | None:
        text = read_optional(path)
        if text is None:
            return None
        pid = parse_pidfile(text)
        if pid is None:
            self._pidfiles_log.failed(group, f"{text[:40]!r} is not a pid", group=self._groups[group].name, path=path)
        else:
            self._pidfiles_log.ok(group)
        return pid

    def _families(self, members: list[list[int]], samples: dict[int, _Sample | None]) -> list[Family]:
        last: dict[tuple[int, int, int], tuple[float, ...]] = {}
        for g, pids in enumerate(members):
            for pid in pids:
                s = samples[pid]
                assert s is not None
                last[(g, pid, s.start)] = s.counters()
        # Fold in processes that left since the last scrape before summing, so no counter dips.
        for key, values in self._last.items():
            if key not in last:
                gone = self._gone[key[0]]
                for i, v in enumerate(values):
                    gone[i] += v
        self._last = last
        cpu, rss, vms, threads, fds, procs, read, written, oldest = [], [], [], [], [], [], [], [], []
        for g, pids in enumerate(members):
            group = self._groups[g].name
            label = (group,)
            live = [s for s in (samples[pid] for pid in pids) if s is not None]
            gone = self._gone[g]
            cpu += [((group, "user"), gone[0] + sum(s.user for s in live)),
                    ((group, "system"), gone[1] + sum(s.system for s in live))]
            read.append((label, gone[2] + sum(s.read or 0 for s in live)))
            written.append((label, gone[3] + sum(s.written or 0 for s in live)))
            rss.append((label, sum(s.rss for s in live)))
            vms.append((label, sum(s.vms for s in live)))
            threads.append((label, sum(s.threads for s in live)))
            fds.append((label, sum(s.fds or 0 for s in live)))
            procs.append((label, len(live)))
            if live:
                oldest.append((label, self._boot_time + min(s.start for s in live) / _CLK_TCK))
        return [F.PROCESS_GROUP_CPU.family(cpu), F.PROCESS_GROUP_RSS.family(rss), F.PROCESS_GROUP_VMS.family(vms),
                F.PROCESS_GROUP_THREADS.family(threads), F.PROCESS_GROUP_FDS.family(fds),
                F.PROCESS_GROUP_PROCESSES.family(procs), F.PROCESS_GROUP_READ.family(read),
                F.PROCESS_GROUP_WRITTEN.family(written), F.PROCESS_GROUP_OLDEST_START.family(oldest),
                *self._depth_families(members, samples)]

    def _depth_families(self, members: list[list[int]], samples: dict[int, _Sample | None]) -> list[Family]:
        """States, faults, context switches, swap, PSS and the worst fd-to-limit ratio per group."""
        states, faults, switches, swap, pss, fd_ratio = [], [], [], [], [], []
        for g, pids in enumerate(members):
            group = self._groups[g].name
            label = (group,)
            live = [s for s in (samples[pid] for pid in pids) if s is not None]
            gone = self._gone[g]
            counts = dict.fromkeys(_ALWAYS_STATES, 0)
            for s in live:
                name = STATES.get(s.state, "other")
                counts[name] = counts.get(name, 0) + 1
            states += [((group, state), float(n)) for state, n in counts.items()]
            faults.append((label, gone[4] + sum(s.major_faults for s in live)))
            switches += [((group, "voluntary"), gone[5] + sum(s.voluntary for s in live)),
                         ((group, "involuntary"), gone[6] + sum(s.involuntary for s in live))]
            swap.append((label, float(sum(s.swap for s in live))))
            if self._pss:
                pss.append((label, float(sum(s.pss or 0 for s in live))))
            ratios = [s.fds / s.fd_limit for s in live if s.fds is not None and s.fd_limit]
            if ratios:
                fd_ratio.append((label, max(ratios)))
        out = [F.PROCESS_GROUP_STATES.family(states), F.PROCESS_GROUP_MAJOR_FAULTS.family(faults),
               F.PROCESS_GROUP_CONTEXT_SWITCHES.family(switches), F.PROCESS_GROUP_SWAP.family(swap),
               F.PROCESS_GROUP_FD_RATIO.family(fd_ratio)]
        if self._pss:
            out.append(F.PROCESS_GROUP_PSS.family(pss))
        return out
