"""Container metrics: memory, CPU and pids usage and limits of the cgroup the exporter runs in.

As a sidecar the exporter shares its pod's limits only at the pod level, but in its own
container it sees the same kind of cgroup the app has; on a host it reports the
service's cgroup (systemd puts each unit in one).

Both hierarchies are read, per controller: a controller named in a v1 line of
/proc/self/cgroup lives in that v1 hierarchy (/sys/fs/cgroup/<controller>), every
other one in the unified (v2) hierarchy, at /sys/fs/cgroup or, on hybrid hosts,
/sys/fs/cgroup/unified. When the cgroup filesystem shows only the container's own
subtree (a cgroup namespace, or Docker's v1 bind mounts), the path from
/proc/self/cgroup is shortened from the left until it exists. Series whose files
are missing are left out; a cgroup without limits has no limit series.
"""

from __future__ import annotations

import asyncio
import os
from typing import NamedTuple

from exporter import families as F
from exporter.collectors._procfs import key_values, read_optional
from exporter.model import Family
from exporter.schema import CollectorConfig

# v1 writes "no limit" as the largest page-aligned counter (9223372036854771712 on 4 KiB pages).
V1_UNLIMITED = 1 << 62
_CLK_TCK = os.sysconf("SC_CLK_TCK")


class Config(CollectorConfig):
    # Where the cgroup filesystem and /proc are mounted (tests point them at fixture trees).
    cgroup_root: str = "/sys/fs/cgroup"
    proc_root: str = "/proc"


# --- pure parsers -----------------------------------------------------------------------------


class Membership(NamedTuple):
    unified: str | None  # the v2 path ("0::<path>"), if any
    v1: dict[str, str]  # controller -> path


def parse_proc_cgroup(text: str) -> Membership:
    """/proc/<pid>/cgroup: `hierarchy-id:controller,list:path` per line; v2 is `0::path`."""
    unified: str | None = None
    v1: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, path = parts
        if hid == "0" and controllers == "":
            unified = path
        else:
            for controller in controllers.split(","):
                if controller and not controller.startswith("name="):
                    v1[controller] = path
    return Membership(unified, v1)


def parse_max(text: str) -> int | None:
    """A v2 limit file (memory.max, pids.max): a number, or "max" for no limit."""
    value = text.strip()
    return None if value == "max" else int(value)


def parse_cpu_max(text: str) -> float | None:
    """v2 cpu.max "quota period" in microseconds -> cores; None when the quota is "max"."""
    quota, _, period = text.strip().partition(" ")
    if quota == "max":
        return None
    return int(quota) / int(period or "100000")


def v1_limit(value: int | None) -> int | None:
    return None if value is None or value >= V1_UNLIMITED else value


def v1_cpu_limit(quota_us: int | None, period_us: int | None) -> float | None:
    """cpu.cfs_quota_us / cpu.cfs_period_us -> cores; -1 quota means no limit."""
    if quota_us is None or quota_us <= 0 or not period_us:
        return None
    return quota_us / period_us


def candidates(mount: str, path: str) -> list[str]:
    """Directories the cgroup `path` may be at under `mount`, most specific first."""
    parts = [p for p in path.split("/") if p]
    return [os.path.join(mount, *parts[i:]) for i in range(len(parts) + 1)]


# --- the collector ----------------------------------------------------------------------------


class Layout(NamedTuple):
    """Directory holding each resource's files and whether it is a v2 directory."""

    memory: tuple[str, bool] | None
    cpu: tuple[str, bool] | None  # cpu.stat, cpu.max / cpu.cfs_*
    cpuacct: tuple[str, bool] | None  # usage: v2 cpu.stat, v1 cpuacct.*
    pids: tuple[str, bool] | None


def _first_dir(paths: list[str]) -> str | None:
    return next((p for p in paths if os.path.isdir(p)), None)


def resolve(cgroup_root: str, membership: Membership) -> Layout:
    unified_mount = None
    for mount in (cgroup_root, os.path.join(cgroup_root, "unified")):
        if os.path.exists(os.path.join(mount, "cgroup.controllers")):
            unified_mount = mount
            break
    v2_dir = None
    if unified_mount is not None and membership.unified is not None:
        v2_dir = _first_dir(candidates(unified_mount, membership.unified))

    def place(controller: str) -> tuple[str, bool] | None:
        path = membership.v1.get(controller)
        if path is not None:
            # cpu and cpuacct are usually co-mounted at "cpu,cpuacct", with "cpu" and "cpuacct" symlinks.
            names = (controller, "cpu,cpuacct", "cpuacct,cpu") if controller in ("cpu", "cpuacct") else (controller,)
            for name in names:
                mount = os.path.join(cgroup_root, name)
                if os.path.isdir(mount) and (found := _first_dir(candidates(mount, path))):
                    return found, False
            return None
        return (v2_dir, True) if v2_dir else None

    return Layout(place("memory"), place("cpu"), place("cpuacct"), place("pids"))


def _int(path: str) -> int | None:
    text = read_optional(path)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def _kv(path: str) -> dict[str, int]:
    text = read_optional(path)
    return key_values(text) if text is not None else {}


class ContainerCollector:
    def __init__(self, config: Config) -> None:
        self._root = config.cgroup_root
        self._self_cgroup = os.path.join(config.proc_root, "self", "cgroup")
        # Membership rarely changes; resolve the directories again only when it does.
        self._layout: tuple[str, Layout] | None = None

    async def collect(self) -> list[Family]:
        return await asyncio.to_thread(self._collect)

    async def close(self) -> None:
        return None

    def _collect(self) -> list[Family]:
        text = read_optional(self._self_cgroup)
        if not text:
            return []
        if self._layout is None or self._layout[0] != text:
            self._layout = (text, resolve(self._root, parse_proc_cgroup(text)))
        layout = self._layout[1]
        out: list[Family] = []
        if layout.memory:
            self._memory(*layout.memory, out)
        if layout.cpuacct:
            self._cpu_usage(*layout.cpuacct, out)
        if layout.cpu:
            self._cpu_limits(*layout.cpu, out)
        if layout.pids:
            self._pids(*layout.pids, out)
        return out

    def _memory(self, d: str, v2: bool, out: list[Family]) -> None:
        stat = _kv(f"{d}/memory.stat")
        if v2:
            usage = _int(f"{d}/memory.current")
            text = read_optional(f"{d}/memory.max")
            try:
                limit = parse_max(text) if text is not None else None
            except ValueError:
                limit = None
            events = _kv(f"{d}/memory.events")
            rss, cache, inactive_file = stat.get("anon"), stat.get("file"), stat.get("inactive_file")
        else:
            usage = _int(f"{d}/memory.usage_in_bytes")
            # The effective limit includes any set on a parent (a Kubernetes pod's, say).
            limit = stat.get("hierarchical_memory_limit")
            limit = v1_limit(limit if limit is not None else _int(f"{d}/memory.limit_in_bytes"))
            events = {}
            failcnt = _int(f"{d}/memory.failcnt")
            if failcnt is not None:
                events["max"] = failcnt
            oom = _kv(f"{d}/memory.oom_control")
            if "oom_kill" in oom:
                events["oom_kill"] = oom["oom_kill"]
            rss = stat.get("total_rss", stat.get("rss"))
            cache = stat.get("total_cache", stat.get("cache"))
            inactive_file = stat.get("total_inactive_file", stat.get("inactive_file"))
        if usage is None:
            return
        out.append(F.CONTAINER_MEMORY_USAGE.one(usage))
        out.append(F.CONTAINER_MEMORY_WORKING_SET.one(max(0, usage - (inactive_file or 0))))
        if rss is not None:
            out.append(F.CONTAINER_MEMORY_RSS.one(rss))
        if cache is not None:
            out.append(F.CONTAINER_MEMORY_CACHE.one(cache))
        if limit is not None:
            out.append(F.CONTAINER_MEMORY_LIMIT.one(limit))
        if events:
            out.append(F.CONTAINER_MEMORY_EVENTS.family(((k,), v) for k, v in sorted(events.items())))

    def _cpu_usage(self, d: str, v2: bool, out: list[Family]) -> None:
        if v2:
            stat = _kv(f"{d}/cpu.stat")
            usage, user, system = (stat.get(k) for k in ("usage_usec", "user_usec", "system_usec"))
            scale = 1e-6
        else:
            usage, user, system = (_int(f"{d}/cpuacct.{k}") for k in ("usage", "usage_user", "usage_sys"))
            scale = 1e-9
            if user is None or system is None:  # kernels before 4.7: clock ticks in cpuacct.stat
                ticks = _kv(f"{d}/cpuacct.stat")
                if "user" in ticks and "system" in ticks:
                    out.append(F.CONTAINER_CPU_USER.one(ticks["user"] / _CLK_TCK))
                    out.append(F.CONTAINER_CPU_SYSTEM.one(ticks["system"] / _CLK_TCK))
        for spec, value in ((F.CONTAINER_CPU_USAGE, usage), (F.CONTAINER_CPU_USER, user),
                            (F.CONTAINER_CPU_SYSTEM, system)):
            if value is not None:
                out.append(spec.one(value * scale))

    def _cpu_limits(self, d: str, v2: bool, out: list[Family]) -> None:
        stat = _kv(f"{d}/cpu.stat")
        throttled = stat.get("throttled_usec")
        throttled_seconds = throttled * 1e-6 if throttled is not None else None
        if v2:
            text = read_optional(f"{d}/cpu.max")
            try:
                limit = parse_cpu_max(text) if text else None
            except ValueError:
                limit = None
        else:
            ns = stat.get("throttled_time")
            throttled_seconds = ns * 1e-9 if ns is not None else None
            limit = v1_cpu_limit(_int(f"{d}/cpu.cfs_quota_us"), _int(f"{d}/cpu.cfs_period_us"))
        for spec, value in ((F.CONTAINER_CPU_PERIODS, stat.get("nr_periods")),
                            (F.CONTAINER_CPU_THROTTLED_PERIODS, stat.get("nr_throttled")),
                            (F.CONTAINER_CPU_THROTTLED_SECONDS, throttled_seconds),
                            (F.CONTAINER_CPU_LIMIT, limit)):
            if value is not None:
                out.append(spec.one(value))

    def _pids(self, d: str, v2: bool, out: list[Family]) -> None:
        current = _int(f"{d}/pids.current")
        if current is None:
            return
        out.append(F.CONTAINER_PIDS.one(current))
        text = read_optional(f"{d}/pids.max")
        try:
            limit = parse_max(text) if text is not None else None
        except ValueError:
            limit = None
        if limit is not None:
            out.append(F.CONTAINER_PIDS_LIMIT.one(limit))
