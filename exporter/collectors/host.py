"""Host metrics (CPU, load, memory, swap, pressure, filesystems, disks, network, fds) from /proc and /sys.

The files are parsed here rather than through psutil: one read of /proc/stat gives
CPU, context switches, interrupts, forks and boot time (psutil reads it three times),
/proc/diskstats counts 512-byte sectors whatever the device's sector size (psutil
scales by the hardware sector size), and `proc_root`/`rootfs` let a container watch
its host through bind mounts, as node_exporter's --path.procfs/--path.rootfs do.
Every section is independent: one unreadable file costs its own families, logged once
per change of state, never the rest. A file an older or differently built kernel does not
have (no PSI, no conntrack module, no oom_kill before 4.13) is not an error: its families
are left out and a debug line says so once.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import time
from collections.abc import Callable
from operator import attrgetter
from typing import NamedTuple

from exporter import families as F
from exporter.collectors._procfs import read_text
from exporter.collectors.namefilter import compile_filter
from exporter.collectors.netstat import parse_snmp, parse_snmp6, parse_softnet
from exporter.collectors.pressure import RESOURCES, parse_pressure
from exporter.collectors.statfs import StatfsPool
from exporter.collectors.timex import read_clock
from exporter.model import Family
from exporter.schema import CollectorConfig, Duration, Regex, Section
from exporter.statelog import StateLog

log = logging.getLogger(__name__)

# Upstream node_exporter's defaults (1.6+), so the same filesystems and disks show up in both.
# Debian's package patches its own to also drop /run, /mnt, /media and the lo interface.
DEFAULT_MOUNTPOINT_EXCLUDE = r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
DEFAULT_FSTYPE_EXCLUDE = (
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs"
    r"|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$")
# Partitions, RAM disks and loop devices: whole disks only, as node_exporter.
DEFAULT_DISK_EXCLUDE = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"

CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")
SECTOR_BYTES = 512  # /proc/diskstats always counts 512-byte sectors
SPEED_TTL = 300.0  # seconds a link speed read from sysfs is reused
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# How a kernel says it lacks a file: absent, or present but unsupported (PSI built in, booted psi=0).
_ABSENT = frozenset((errno.ENOENT, errno.ENOTDIR, errno.EOPNOTSUPP, errno.EACCES, errno.EPERM))
_SNMP_PROTOCOLS, _NETSTAT_PROTOCOLS = frozenset(("Udp", "Tcp")), frozenset(("TcpExt",))
_UDP6_FIELDS = frozenset(("Udp6RcvbufErrors", "Udp6InErrors"))
_TCP = (("Tcp", "OutSegs", F.HOST_TCP_OUT_SEGMENTS), ("Tcp", "RetransSegs", F.HOST_TCP_RETRANSMITTED_SEGMENTS),
        ("Tcp", "InErrs", F.HOST_TCP_IN_ERRORS), ("Tcp", "OutRsts", F.HOST_TCP_OUT_RESETS),
        ("Tcp", "CurrEstab", F.HOST_TCP_ESTABLISHED), ("TcpExt", "ListenOverflows", F.HOST_TCP_LISTEN_OVERFLOWS),
        ("TcpExt", "ListenDrops", F.HOST_TCP_LISTEN_DROPS), ("TcpExt", "SyncookiesSent", F.HOST_TCP_SYNCOOKIES_SENT))
# node_exporter's names: cpu's `full` line (Linux 5.13+) is always 0 host-wide, so it is not exported.
_PRESSURE = {"cpu": (("some", F.HOST_PRESSURE_CPU_WAITING),),
             "memory": (("some", F.HOST_PRESSURE_MEMORY_WAITING), ("full", F.HOST_PRESSURE_MEMORY_STALLED)),
             "io": (("some", F.HOST_PRESSURE_IO_WAITING), ("full", F.HOST_PRESSURE_IO_STALLED))}


class Filesystems(Section):
    """Which mounts to measure; patterns are unanchored regexes (anchor with ^ and $), exclude wins."""

    mountpoint_include: Regex | None = None
    mountpoint_exclude: Regex | None = DEFAULT_MOUNTPOINT_EXCLUDE
    fstype_include: Regex | None = None
    fstype_exclude: Regex | None = DEFAULT_FSTYPE_EXCLUDE
    # How long the statfs calls of one scrape may take together; a mount that has not
    # answered by then is skipped (device_error 1) until its call returns.
    mount_timeout: Duration = 1.0


class Disks(Section):
    device_include: Regex | None = None
    device_exclude: Regex | None = DEFAULT_DISK_EXCLUDE


class Network(Section):
    # Like node_exporter, every interface (lo included) by default.
    device_include: Regex | None = None
    device_exclude: Regex | None = None


class Config(CollectorConfig):
    # Where the host's /proc, /sys and / are seen: /host/proc, /host/sys and /host/root in a
    # container with bind mounts.
    proc_root: str = "/proc"
    sys_root: str = "/sys"
    rootfs: str = "/"
    # CPU time per logical CPU as well as summed: 10 series per CPU, so off by default.
    per_cpu: bool = False
    filesystems: Filesystems = Filesystems()
    disks: Disks = Disks()
    network: Network = Network()


# --- pure parsers (unit-tested on literal text) ---------------------------------------------


class Stat(NamedTuple):
    cpu_ticks: dict[str, int]
    cpus: int
    context_switches: int | None
    interrupts: int | None
    boot_time: int | None
    forks: int | None
    procs_running: int | None
    procs_blocked: int | None
    per_cpu_ticks: dict[str, dict[str, int]]


def parse_stat(text: str, per_cpu: bool = False) -> Stat:
    """/proc/stat: the aggregate `cpu` line (in clock ticks), online CPUs and the kernel counters.

    With `per_cpu`, also each `cpuN` line, keyed by N as node_exporter's `cpu` label.
    """
    ticks: dict[str, int] = {}
    per: dict[str, dict[str, int]] = {}
    cpus = 0
    single: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("cpu"):
            head, _, rest = line.partition(" ")
            if head == "cpu":
                ticks = dict(zip(CPU_MODES, map(int, rest.split())))
            else:
                cpus += 1
                if per_cpu:
                    per[head[3:]] = dict(zip(CPU_MODES, map(int, rest.split())))
        else:
            # The intr line lists every IRQ after the total: only the first number is wanted.
            parts = line.split(" ", 2)
            if len(parts) >= 2 and parts[1].isdigit():
                single[parts[0]] = int(parts[1])
    return Stat(ticks, cpus, single.get("ctxt"), single.get("intr"), single.get("btime"),
                single.get("processes"), single.get("procs_running"), single.get("procs_blocked"), per)


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo in bytes, keyed without the colon."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[name] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return out


class Memory(NamedTuple):
    total: int
    available: int
    used: int
    free: int
    cached: int
    buffers: int
    swap_total: int
    swap_used: int


def memory(meminfo: dict[str, int]) -> Memory:
    """psutil's and free(1)'s definitions: used = total - available, cached includes reclaimable slab."""
    total = meminfo["MemTotal"]
    free = meminfo.get("MemFree", 0)
    available = meminfo.get("MemAvailable")
    if available is None:  # kernels before 3.14
        available = free + meminfo.get("Buffers", 0) + meminfo.get("Cached", 0)
    available = min(max(available, 0), total)
    swap_total = meminfo.get("SwapTotal", 0)
    return Memory(total, available, total - available, free,
                  meminfo.get("Cached", 0) + meminfo.get("SReclaimable", 0), meminfo.get("Buffers", 0),
                  swap_total, swap_total - meminfo.get("SwapFree", 0))


# meminfo fields exported as they are, behind "available": a missing one (older kernel) is left out.
MEMINFO_DETAIL = (("Dirty", F.HOST_MEMORY_DIRTY), ("Writeback", F.HOST_MEMORY_WRITEBACK),
                  ("SReclaimable", F.HOST_MEMORY_SLAB_RECLAIMABLE),
                  ("SUnreclaim", F.HOST_MEMORY_SLAB_UNRECLAIMABLE), ("Shmem", F.HOST_MEMORY_SHMEM),
                  ("AnonPages", F.HOST_MEMORY_ANON), ("Committed_AS", F.HOST_MEMORY_COMMITTED),
                  ("CommitLimit", F.HOST_MEMORY_COMMIT_LIMIT))
VMSTAT_FIELDS = frozenset(("pswpin", "pswpout", "oom_kill", "pgmajfault"))


def parse_vmstat(text: str, wanted: frozenset[str] = VMSTAT_FIELDS) -> dict[str, int]:
    """The wanted `name value` counters of /proc/vmstat (about 180 lines); absent names are left out."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            out[name] = int(value)
    return out


def _unescape_mount(field: str) -> str:
    # /proc/*/mounts writes space, tab, newline and backslash as octal escapes.
    if "\\" not in field:
        return field
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


class Mount(NamedTuple):
    device: str
    mountpoint: str
    fstype: str


def parse_mounts(text: str) -> list[Mount]:
    """/proc/*/mounts; a mountpoint mounted over is reported once, for the mount on top."""
    by_point: dict[str, Mount] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            mount = Mount(_unescape_mount(parts[0]), _unescape_mount(parts[1]), parts[2])
            by_point.pop(mount.mountpoint, None)
            by_point[mount.mountpoint] = mount
    return list(by_point.values())


class DiskStats(NamedTuple):
    device: str
    reads: int
    read_sectors: int
    read_ms: int
    writes: int
    write_sectors: int
    write_ms: int
    io_ms: int


def parse_diskstats(text: str) -> list[DiskStats]:
    out = []
    for line in text.splitlines():
        p = line.split()
        if len(p) >= 14:
            out.append(DiskStats(p[2], int(p[3]), int(p[5]), int(p[6]), int(p[7]), int(p[9]), int(p[10]),
                                 int(p[12])))
    return out


class Traffic(NamedTuple):
    """One direction's counters of an interface."""

    bytes: int
    packets: int
    errors: int
    drops: int


class NetDev(NamedTuple):
    device: str
    rx: Traffic
    tx: Traffic


def parse_netdev(text: str) -> list[NetDev]:
    """/proc/net/dev: two header lines, then `name: 8 receive fields 8 transmit fields`."""
    out = []
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        v = rest.split()
        if sep and len(v) >= 16:
            out.append(NetDev(name.strip(), Traffic(*map(int, v[0:4])), Traffic(*map(int, v[8:12]))))
    return out


def parse_file_nr(text: str) -> tuple[int, int]:
    """/proc/sys/fs/file-nr: allocated, unused (always 0 since 2.6), maximum."""
    allocated, _unused, maximum = text.split()[:3]
    return int(allocated), int(maximum)


def parse_loadavg(text: str) -> tuple[float, float, float]:
    one, five, fifteen = text.split()[:3]
    return float(one), float(five), float(fifteen)


def _attribute(path: str) -> str | None:
    """One sysfs attribute, stripped; None when the kernel will not give it now (a normal state)."""
    try:
        return read_text(path).strip()
    except OSError:
        return None


# --- the collector ----------------------------------------------------------------------------


class HostCollector:
    def __init__(self, config: Config) -> None:
        self._config = config
        self._proc = config.proc_root.rstrip("/") or "/"
        self._rootfs = config.rootfs
        fs = config.filesystems
        self._mountpoints = compile_filter(fs.mountpoint_include, fs.mountpoint_exclude)
        self._fstypes = compile_filter(fs.fstype_include, fs.fstype_exclude)
        self._disks = compile_filter(config.disks.device_include, config.disks.device_exclude)
        self._netdevs = compile_filter(config.network.device_include, config.network.device_exclude)
        self._mount_timeout = fs.mount_timeout
        # Mountpoints whose statfs has not returned yet (a dead NFS server) are skipped until it
        # does, so one hung mount costs one stuck thread and its own figures, not the scrape.
        self._statfs = StatfsPool()
        self._mounts_log = StateLog(log, "filesystem statfs hangs, skipping it", "filesystem statfs answers again")
        self._sections_log = StateLog(log, "host section unreadable", "host section readable again")
        self._per_cpu = config.per_cpu
        self._sys = config.sys_root.rstrip("/") or "/"
        self._speeds: dict[str, tuple[float, float | None]] = {}  # device -> (read at, bytes/s or None)
        self._absent: set[str] = set()  # optional files found missing, each logged once
        self._sections: tuple[tuple[str, Callable[[list[Family]], None]], ...] = (
            ("stat", self._stat), ("loadavg", self._loadavg), ("memory", self._memory),
            ("vmstat", self._vmstat), ("pressure", self._pressure),
            ("filesystems", self._filesystems), ("disks", self._diskstats), ("network", self._network),
            ("links", self._links), ("clock", self._clock),
            ("snmp", self._snmp), ("softnet", self._softnet), ("conntrack", self._conntrack),
            ("filefd", self._filefd))

    async def collect(self) -> list[Family]:
        return await asyncio.to_thread(self._collect)

    async def close(self) -> None:
        await asyncio.to_thread(self._statfs.close)

    def _collect(self) -> list[Family]:
        out: list[Family] = []
        for name, section in self._sections:
            try:
                section(out)
            except (OSError, ValueError, KeyError, IndexError) as err:
                self._sections_log.failed(name, repr(err), section=name)
                continue
            self._sections_log.ok(name, section=name)
        return out

    def _path(self, rel: str) -> str:
        return f"{self._proc}/{rel}"

    def _optional(self, path: str) -> str | None:
        """A file the kernel may lack (no PSI, no conntrack): None, logged at debug once, not an error."""
        try:
            text = read_text(path)
        except OSError as err:
            if err.errno not in _ABSENT:
                raise
            if path not in self._absent:
                self._absent.add(path)
                log.debug("host file absent, its families are left out", extra={"path": path, "err": repr(err)})
            return None
        self._absent.discard(path)
        return text

    def _stat(self, out: list[Family]) -> None:
        stat = parse_stat(read_text(self._path("stat")), self._per_cpu)
        out.append(F.HOST_CPU_SECONDS.family(((m,), t / _CLK_TCK) for m, t in stat.cpu_ticks.items()))
        if self._per_cpu:
            out.append(F.HOST_PER_CPU_SECONDS.family(((cpu, m), t / _CLK_TCK) for cpu, ticks in
                                                     stat.per_cpu_ticks.items() for m, t in ticks.items()))
        out.append(F.HOST_CPUS.one(stat.cpus))
        for spec, value in ((F.HOST_CONTEXT_SWITCHES, stat.context_switches), (F.HOST_INTERRUPTS, stat.interrupts),
                            (F.HOST_BOOT_TIME, stat.boot_time), (F.HOST_FORKS, stat.forks),
                            (F.HOST_PROCS_RUNNING, stat.procs_running), (F.HOST_PROCS_BLOCKED, stat.procs_blocked)):
            if value is not None:
                out.append(spec.one(value))

    def _loadavg(self, out: list[Family]) -> None:
        one, five, fifteen = parse_loadavg(read_text(self._path("loadavg")))
        out += [F.HOST_LOAD1.one(one), F.HOST_LOAD5.one(five), F.HOST_LOAD15.one(fifteen)]

    def _memory(self, out: list[Family]) -> None:
        meminfo = parse_meminfo(read_text(self._path("meminfo")))
        mem = memory(meminfo)
        out += [F.HOST_MEMORY_TOTAL.one(mem.total), F.HOST_MEMORY_AVAILABLE.one(mem.available),
                F.HOST_MEMORY_USED.one(mem.used), F.HOST_MEMORY_FREE.one(mem.free),
                F.HOST_MEMORY_CACHED.one(mem.cached), F.HOST_MEMORY_BUFFERS.one(mem.buffers),
                F.HOST_SWAP_TOTAL.one(mem.swap_total), F.HOST_SWAP_USED.one(mem.swap_used)]
        out += [spec.one(meminfo[key]) for key, spec in MEMINFO_DETAIL if key in meminfo]

    def _vmstat(self, out: list[Family]) -> None:
        vm = parse_vmstat(read_text(self._path("vmstat")))
        out += [F.HOST_SWAP_IN.one(vm.get("pswpin", 0) * _PAGE_SIZE),
                F.HOST_SWAP_OUT.one(vm.get("pswpout", 0) * _PAGE_SIZE)]
        for key, spec in (("oom_kill", F.HOST_OOM_KILLS), ("pgmajfault", F.HOST_MAJOR_PAGE_FAULTS)):
            if key in vm:  # oom_kill since Linux 4.13
                out.append(spec.one(vm[key]))

    def _pressure(self, out: list[Family]) -> None:
        for resource in RESOURCES:
            text = self._optional(self._path(f"pressure/{resource}"))
            if text is None:
                continue
            stalls = parse_pressure(text)
            for kind, spec in _PRESSURE[resource]:
                if kind in stalls:
                    out.append(spec.one(stalls[kind]))

    def _read_mounts(self) -> str:
        # The host's mount table is pid 1's; a process in its own mount namespace sees its own.
        try:
            return read_text(self._path("1/mounts"))
        except OSError:
            return read_text(self._path("self/mounts"))

    def _filesystems(self, out: list[Family]) -> None:
        size, free, avail, used, files, files_free, errors, readonly = [], [], [], [], [], [], [], []
        mounts = [m for m in parse_mounts(self._read_mounts())
                  if self._mountpoints(m.mountpoint) and self._fstypes(m.fstype)]
        results = self._statfs.stat([(m.mountpoint, self._on_rootfs(m.mountpoint)) for m in mounts],
                                    self._mount_timeout)
        for mount in mounts:
            labels = (mount.device, mount.mountpoint, mount.fstype)
            result = results[mount.mountpoint]
            st = result.stat
            if st is None:
                errors.append((labels, 1.0))
                if result.stuck:
                    self._mounts_log.failed(mount.mountpoint, f"no answer within {self._mount_timeout:g}s",
                                            mountpoint=mount.mountpoint)
                continue
            self._mounts_log.ok(mount.mountpoint, mountpoint=mount.mountpoint)
            errors.append((labels, 0.0))
            size.append((labels, st.f_blocks * st.f_frsize))
            free.append((labels, st.f_bfree * st.f_frsize))
            avail.append((labels, st.f_bavail * st.f_frsize))
            used.append((labels, (st.f_blocks - st.f_bfree) * st.f_frsize))
            files.append((labels, st.f_files))
            files_free.append((labels, st.f_ffree))
            # The mount's flags and its superblock's together: a filesystem the kernel remounted
            # read-only after an I/O error (errors=remount-ro) shows here as well.
            readonly.append((labels, 1.0 if st.f_flag & os.ST_RDONLY else 0.0))
        out += [F.HOST_FS_SIZE.family(size), F.HOST_FS_FREE.family(free), F.HOST_FS_AVAIL.family(avail),
                F.HOST_FS_USED.family(used), F.HOST_FS_FILES.family(files),
                F.HOST_FS_FILES_FREE.family(files_free), F.HOST_FS_ERROR.family(errors),
                F.HOST_FS_READONLY.family(readonly)]

    def _on_rootfs(self, mountpoint: str) -> str:
        if self._rootfs in ("", "/"):
            return mountpoint
        return os.path.join(self._rootfs, mountpoint.lstrip("/"))

    def _diskstats(self, out: list[Family]) -> None:
        disks = [d for d in parse_diskstats(read_text(self._path("diskstats"))) if self._disks(d.device)]
        out += [
            F.HOST_DISK_READ_BYTES.family(((d.device,), d.read_sectors * SECTOR_BYTES) for d in disks),
            F.HOST_DISK_WRITTEN_BYTES.family(((d.device,), d.write_sectors * SECTOR_BYTES) for d in disks),
            F.HOST_DISK_READS.family(((d.device,), d.reads) for d in disks),
            F.HOST_DISK_WRITES.family(((d.device,), d.writes) for d in disks),
            F.HOST_DISK_READ_TIME.family(((d.device,), d.read_ms / 1000) for d in disks),
            F.HOST_DISK_WRITE_TIME.family(((d.device,), d.write_ms / 1000) for d in disks),
            F.HOST_DISK_IO_TIME.family(((d.device,), d.io_ms / 1000) for d in disks),
        ]

    def _network(self, out: list[Family]) -> None:
        devs = [d for d in parse_netdev(read_text(self._path("net/dev"))) if self._netdevs(d.device)]
        for spec, field in ((F.HOST_NET_RX_BYTES, "rx.bytes"), (F.HOST_NET_RX_PACKETS, "rx.packets"),
                            (F.HOST_NET_RX_ERRORS, "rx.errors"), (F.HOST_NET_RX_DROPS, "rx.drops"),
                            (F.HOST_NET_TX_BYTES, "tx.bytes"), (F.HOST_NET_TX_PACKETS, "tx.packets"),
                            (F.HOST_NET_TX_ERRORS, "tx.errors"), (F.HOST_NET_TX_DROPS, "tx.drops")):
            value = attrgetter(field)
            out.append(spec.family(((d.device,), value(d)) for d in devs))

    def _links(self, out: list[Family]) -> None:
        base = f"{self._sys}/class/net"
        try:
            devices = sorted(d for d in os.listdir(base) if self._netdevs(d))
        except (FileNotFoundError, NotADirectoryError):
            self._optional(base)  # no sysfs here: logged at debug once, like any absent file
            return
        now = time.monotonic()
        up, carrier, speed = [], [], []
        for device in devices:
            state = _attribute(f"{base}/{device}/operstate")
            if state is None:
                continue  # the interface went away since the listing
            up.append(((device,), 1.0 if state == "up" else 0.0))
            # The kernel says `up` only with a carrier, so the carrier file is read only for the
            # other states (lo's `unknown`, a cable pulled); it is unreadable (EINVAL) while the
            # interface is administratively down, and then left out.
            if state == "up":
                carrier.append(((device,), 1.0))
            elif (link := _attribute(f"{base}/{device}/carrier")) in ("0", "1"):
                carrier.append(((device,), float(link == "1")))
            # Speed changes only when the link renegotiates: read again after SPEED_TTL, so a
            # host with hundreds of veth interfaces does not query every driver every scrape.
            # -1 (the driver does not know: virtual NICs) and unreadable are left out.
            cached = self._speeds.get(device)
            if cached is None or now - cached[0] > SPEED_TTL:
                mbits = _attribute(f"{base}/{device}/speed")
                cached = (now, int(mbits) * 125_000.0 if mbits is not None and mbits.isdigit() and int(mbits) > 0
                          else None)
                self._speeds[device] = cached
            if cached[1] is not None:
                speed.append(((device,), cached[1]))
        for gone in self._speeds.keys() - set(devices):
            del self._speeds[gone]
        out += [F.HOST_NET_UP.family(up), F.HOST_NET_CARRIER.family(carrier), F.HOST_NET_SPEED.family(speed)]

    def _clock(self, out: list[Family]) -> None:
        clock = read_clock()
        if clock is not None:
            out += [F.HOST_TIMEX_SYNC.one(float(clock.synchronised)), F.HOST_TIMEX_OFFSET.one(clock.offset),
                    F.HOST_TIMEX_MAXERROR.one(clock.max_error),
                    F.HOST_TIMEX_ESTIMATED_ERROR.one(clock.estimated_error)]

    def _snmp(self, out: list[Family]) -> None:
        snmp = parse_snmp(read_text(self._path("net/snmp")), _SNMP_PROTOCOLS)
        udp = snmp["Udp"]
        snmp6 = self._optional(self._path("net/snmp6"))  # a kernel without IPv6 has none
        udp6 = parse_snmp6(snmp6, _UDP6_FIELDS) if snmp6 is not None else {}
        out += [F.HOST_UDP_RCVBUF_ERRORS.one(float(udp["RcvbufErrors"] + udp6.get("Udp6RcvbufErrors", 0))),
                F.HOST_UDP_IN_ERRORS.one(float(udp["InErrors"] + udp6.get("Udp6InErrors", 0)))]
        # Tcp counts IPv4 and IPv6 together (there is no Tcp6 in snmp6).
        tcp = snmp.get("Tcp", {})
        netstat = self._optional(self._path("net/netstat"))
        tcp_ext = parse_snmp(netstat, _NETSTAT_PROTOCOLS).get("TcpExt", {}) if netstat is not None else {}
        for fields, key, spec in _TCP:
            source = tcp if fields == "Tcp" else tcp_ext
            if key in source:
                out.append(spec.one(source[key]))

    def _softnet(self, out: list[Family]) -> None:
        text = self._optional(self._path("net/softnet_stat"))
        if text is not None:
            softnet = parse_softnet(text)
            out += [F.HOST_SOFTNET_PROCESSED.one(softnet.processed), F.HOST_SOFTNET_DROPPED.one(softnet.dropped),
                    F.HOST_SOFTNET_SQUEEZED.one(softnet.squeezed)]

    def _conntrack(self, out: list[Family]) -> None:
        # Only while the nf_conntrack module is loaded; without it there is nothing to fill.
        count = self._optional(self._path("sys/net/netfilter/nf_conntrack_count"))
        limit = self._optional(self._path("sys/net/netfilter/nf_conntrack_max"))
        if count is not None and limit is not None:
            out += [F.HOST_CONNTRACK_ENTRIES.one(int(count)), F.HOST_CONNTRACK_LIMIT.one(int(limit))]

    def _filefd(self, out: list[Family]) -> None:
        allocated, maximum = parse_file_nr(read_text(self._path("sys/fs/file-nr")))
        out += [F.HOST_FILEFD_ALLOCATED.one(allocated), F.HOST_FILEFD_MAXIMUM.one(maximum)]
