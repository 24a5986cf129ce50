"""Host collector: parsers on literal /proc text, filters on a staged /proc, and this machine's
real figures checked against psutil as an independent reader."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.collectors import host as H
from exporter.collectors import timex as T
from exporter.exposition import render
from tests.collectors.helpers import collect_once, families_once, run, values
from tests.support.node_exporter import node_exporter

CLK_TCK = os.sysconf("SC_CLK_TCK")

STAT = """cpu  4873 10 3025 80022 1222 0 44 33 0 0
cpu0 1488 0 1248 41553 322 0 4 13 0 0
cpu1 3385 10 1776 38469 899 0 40 19 0 0
intr 153280 0 12 0 0 9 0
ctxt 309193
btime 1795613599
processes 8092
procs_running 3
procs_blocked 1
softirq 1 2 3
"""

MEMINFO = """MemTotal:       24684096 kB
MemFree:        24232492 kB
MemAvailable:   24263368 kB
Buffers:            5504 kB
Cached:           263432 kB
SwapCached:            0 kB
SReclaimable:      23252 kB
SUnreclaim:        61784 kB
Dirty:               332 kB
Writeback:            12 kB
AnonPages:        136108 kB
Shmem:             24504 kB
SwapTotal:       1048572 kB
SwapFree:         786428 kB
CommitLimit:    12341796 kB
Committed_AS:     430692 kB
HugePages_Total:       0
"""

# /proc/pressure/* as Linux 6.1 writes them (cpu's `full` line since 5.13).
PRESSURE = {
    "cpu": "some avg10=6.89 avg60=2.71 avg300=1.66 total=5420589156\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    "memory": "some avg10=0.00 avg60=0.00 avg300=0.00 total=1500\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=700\n",
    "io": "some avg10=6.77 avg60=1.77 avg300=0.73 total=96048877\nfull avg10=5.70 avg60=1.41 avg300=0.55 total=18819755\n",
}

MOUNTS = """proc /proc proc rw,relatime 0 0
/dev/sda1 / ext4 rw,relatime 0 0
tmpfs /run tmpfs rw,nosuid 0 0
tmpfs /run/credentials/systemd-sysctl.service tmpfs ro 0 0
/dev/sdb1 /mnt/my\\040disk xfs rw 0 0
overlay /var/lib/docker/overlay2/abc/merged overlay rw 0 0
/dev/sdc1 /data ext4 rw 0 0
/dev/sdd1 /data ext4 rw 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw 0 0
"""

DISKSTATS = """   7       0 loop0 10 0 80 1 0 0 0 0 0 1 1 0 0 0 0 0 0
 254       0 vda 35436 7698 2706354 31639 7705 9719 1229320 3999 0 14708 36158 4511 44 125936 467 1007 52
 254       1 vda1 100 0 800 5 0 0 0 0 0 5 5 0 0 0 0 0 0
 253       0 zram0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 259       0 nvme0n1 1 0 8 0 2 0 16 0 0 3 0
 259       1 nvme0n1p1 1 0 8 0 2 0 16 0 0 3 0
 252       0 dm-0 5 0 40 0 6 0 48 0 0 7 0
"""

NETDEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3293      31    0    0    0     0          0         0     3293      31    0    0    0     0       0          0
  eth0: 62096518    1852    1    2    0     0          0         0   131534    1520    3    4    0     0       0          0
veth12ab: 10 1 0 0 0 0 0 0 20 2 0 0 0 0 0 0
"""


# --- parsers -------------------------------------------------------------------------------

def test_parse_stat() -> None:
    st = H.parse_stat(STAT)
    assert st.cpu_ticks == {"user": 4873, "nice": 10, "system": 3025, "idle": 80022, "iowait": 1222, "irq": 0,
                            "softirq": 44, "steal": 33, "guest": 0, "guest_nice": 0}
    assert (st.cpus, st.context_switches, st.interrupts, st.boot_time) == (2, 309193, 153280, 1795613599)
    assert (st.forks, st.procs_running, st.procs_blocked) == (8092, 3, 1)


def test_parse_stat_old_kernel_has_fewer_cpu_fields() -> None:
    st = H.parse_stat("cpu  1 2 3 4\ncpu0 1 2 3 4\n")
    assert st.cpu_ticks == {"user": 1, "nice": 2, "system": 3, "idle": 4}
    assert st.context_switches is None


def test_memory_follows_psutil_definitions() -> None:
    mem = H.memory(H.parse_meminfo(MEMINFO))
    kib = 1024
    assert mem.total == 24684096 * kib
    assert mem.available == 24263368 * kib
    assert mem.used == (24684096 - 24263368) * kib
    assert mem.free == 24232492 * kib
    assert mem.cached == (263432 + 23252) * kib
    assert mem.buffers == 5504 * kib
    assert (mem.swap_total, mem.swap_used) == (1048572 * kib, (1048572 - 786428) * kib)


def test_memory_without_memavailable() -> None:
    mem = H.memory(H.parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 200 kB\n"))
    assert mem.available == 310 * 1024
    assert (mem.swap_total, mem.swap_used) == (0, 0)


def test_parse_vmstat_keeps_the_wanted_counters() -> None:
    text = "nr_free_pages 5\npswpin 12\npswpout 34\npgfault 9\npgmajfault 7\noom_kill 2\n"
    assert H.parse_vmstat(text) == {"pswpin": 12, "pswpout": 34, "pgmajfault": 7, "oom_kill": 2}
    assert H.parse_vmstat("pswpin 1\n") == {"pswpin": 1}  # no oom_kill before Linux 4.13


def test_parse_mounts_unescapes_and_keeps_the_top_mount() -> None:
    mounts = {m.mountpoint: m for m in H.parse_mounts(MOUNTS)}
    assert mounts["/mnt/my disk"] == H.Mount("/dev/sdb1", "/mnt/my disk", "xfs")
    assert mounts["/data"].device == "/dev/sdd1"
    assert len(mounts) == 8


def test_parse_diskstats_counts_512_byte_sectors() -> None:
    vda = next(d for d in H.parse_diskstats(DISKSTATS) if d.device == "vda")
    assert vda == H.DiskStats("vda", 35436, 2706354, 31639, 7705, 1229320, 3999, 14708)


def test_parse_netdev() -> None:
    devs = {d.device: d for d in H.parse_netdev(NETDEV)}
    assert devs["eth0"] == H.NetDev("eth0", H.Traffic(62096518, 1852, 1, 2), H.Traffic(131534, 1520, 3, 4))
    assert set(devs) == {"lo", "eth0", "veth12ab"}


def test_parse_file_nr_and_loadavg() -> None:
    assert H.parse_file_nr("520\t0\t2466193\n") == (520, 2466193)
    assert H.parse_loadavg("0.37 0.18 0.10 2/301 12345\n") == (0.37, 0.18, 0.10)


@pytest.mark.parametrize("device, kept", [
    ("sda", True), ("vda", True), ("nvme0n1", True), ("dm-0", True), ("xvda", True), ("md0", True),
    ("sda1", False), ("vda2", False), ("nvme0n1p1", False), ("loop0", False), ("ram0", False), ("zram0", False),
])
def test_default_disk_exclude(device: str, kept: bool) -> None:
    assert (re.search(H.DEFAULT_DISK_EXCLUDE, device) is None) is kept


@pytest.mark.parametrize("mountpoint, kept", [
    ("/", True), ("/home", True), ("/run", True), ("/var/lib/docker", True), ("/boot/efi", True),
    ("/proc", False), ("/sys/fs/cgroup", False), ("/dev/shm", False), ("/run/credentials/x.service", False),
    ("/var/lib/docker/overlay2/abc/merged", False), ("/var/lib/containers/storage/overlay", False),
])
def test_default_mountpoint_exclude(mountpoint: str, kept: bool) -> None:
    assert (re.search(H.DEFAULT_MOUNTPOINT_EXCLUDE, mountpoint) is None) is kept


@pytest.mark.parametrize("fstype, kept", [
    ("ext4", True), ("xfs", True), ("tmpfs", True), ("nfs4", True), ("btrfs", True),
    ("proc", False), ("sysfs", False), ("cgroup2", False), ("overlay", False), ("squashfs", False),
    ("devtmpfs", False), ("tracefs", False),
])
def test_default_fstype_exclude(fstype: str, kept: bool) -> None:
    assert (re.search(H.DEFAULT_FSTYPE_EXCLUDE, fstype) is None) is kept


# --- a staged /proc: filters and partial failure --------------------------------------------

# /proc/net/snmp and netstat as Linux 6.1 writes them (Ip, IpExt and TcpExt lines cut short).
SNMP = """Ip: Forwarding DefaultTTL
Ip: 1 64
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 90151 83344 2573 2003 26 5158893 5243722 3778 4 166318 0
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 10612087 1110 279570 10892767 279569 0 1 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 0 0 0 0 0
"""


NETSTAT = """TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed EmbryonicRsts ListenOverflows ListenDrops
TcpExt: 5 0 0 1 62 63
IpExt: InNoRoutes InTruncatedPkts
IpExt: 0 0
"""

# Two CPUs, Linux 6.1's 13 columns (the last is the CPU's number), in hexadecimal.
SOFTNET = """007f6c20 00000000 00000002 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
011a9ee0 0000000a 0000000f 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001
"""


@pytest.fixture
def staged(tmp_path: Path) -> Path:
    """A /proc with literal files; filesystems point at real directories under tmp_path."""
    proc = tmp_path / "proc"
    (proc / "net").mkdir(parents=True)
    (proc / "sys" / "fs").mkdir(parents=True)
    (proc / "self").mkdir()
    (proc / "stat").write_text(STAT)
    (proc / "loadavg").write_text("0.37 0.18 0.10 2/301 12345\n")
    (proc / "meminfo").write_text(MEMINFO)
    (proc / "vmstat").write_text("pswpin 12\npswpout 34\npgfault 900\npgmajfault 77\noom_kill 3\n")
    (proc / "pressure").mkdir()
    for resource, text in PRESSURE.items():
        (proc / "pressure" / resource).write_text(text)
    (proc / "diskstats").write_text(DISKSTATS)
    (proc / "net" / "dev").write_text(NETDEV)
    (proc / "net" / "snmp").write_text(SNMP)
    (proc / "net" / "netstat").write_text(NETSTAT)
    (proc / "net" / "softnet_stat").write_text(SOFTNET)
    (proc / "sys" / "net" / "netfilter").mkdir(parents=True)
    (proc / "sys" / "net" / "netfilter" / "nf_conntrack_count").write_text("1200\n")
    (proc / "sys" / "net" / "netfilter" / "nf_conntrack_max").write_text("262144\n")
    (proc / "net" / "snmp6").write_text("Udp6InErrors                    \t3\nUdp6RcvbufErrors                \t2\n")
    (proc / "sys" / "fs" / "file-nr").write_text("520\t0\t2466193\n")
    # /sys/class/net: eth0 up at 1 Gbit/s, lo `unknown` with a carrier, ifb0 down (carrier and
    # speed unreadable), veth12ab up with a speed the driver does not know (-1).
    links = {"eth0": ("up", "1", "1000"), "lo": ("unknown", "1", None), "ifb0": ("down", None, None),
             "veth12ab": ("up", "1", "-1")}
    for device, (state, carrier, speed) in links.items():
        d = tmp_path / "sys" / "class" / "net" / device
        d.mkdir(parents=True)
        (d / "operstate").write_text(state + "\n")
        for name, value in (("carrier", carrier), ("speed", speed)):
            if value is not None:
                (d / name).write_text(value + "\n")
    rootfs = tmp_path / "rootfs"
    for point in ("data", "run", "mnt/my disk"):
        (rootfs / point).mkdir(parents=True)
    # `/` is the staged rootfs itself; /missing does not exist, so statfs fails on it.
    (proc / "self" / "mounts").write_text(MOUNTS + "/dev/sde1 /missing ext4 rw 0 0\n")
    return tmp_path


def host(staged: Path, **config: object) -> dict:
    cfg = H.Config.model_validate({"proc_root": str(staged / "proc"), "sys_root": str(staged / "sys"),
                                   "rootfs": str(staged / "rootfs"), **config})
    return run(lambda: collect_once(H.HostCollector(cfg)))


def test_staged_values(staged: Path) -> None:
    got = host(staged)
    assert got["host_cpu_seconds_total"][("user",)] == 4873 / CLK_TCK
    assert got["host_cpus"][()] == 2
    assert got["host_load15"][()] == 0.10
    assert got["host_memory_total_bytes"][()] == 24684096 * 1024
    assert got["host_swap_in_bytes_total"][()] == 12 * os.sysconf("SC_PAGE_SIZE")
    assert got["host_filefd_allocated"][()] == 520
    assert got["host_filefd_maximum"][()] == 2466193
    assert got["host_boot_time_seconds"][()] == 1795613599
    assert got["host_context_switches_total"][()] == 309193
    assert got["host_disk_read_bytes_total"][("vda",)] == 2706354 * 512
    assert got["host_disk_read_time_seconds_total"][("vda",)] == 31.639
    assert got["host_disk_io_time_seconds_total"][("vda",)] == 14.708
    assert got["host_network_receive_drops_total"][("eth0",)] == 2
    assert got["host_network_transmit_errors_total"][("eth0",)] == 3


def test_default_filters(staged: Path) -> None:
    got = host(staged)
    assert set(got["host_disk_reads_completed_total"]) == {("vda",), ("nvme0n1",), ("dm-0",)}
    assert set(got["host_network_receive_bytes_total"]) == {("lo",), ("eth0",), ("veth12ab",)}
    points = {labels[1] for labels in got["host_filesystem_device_error"]}
    assert points == {"/", "/run", "/mnt/my disk", "/data", "/missing"}
    assert got["host_filesystem_device_error"][("/dev/sde1", "/missing", "ext4")] == 1
    assert got["host_filesystem_device_error"][("/dev/sdd1", "/data", "ext4")] == 0
    assert ("/dev/sde1", "/missing", "ext4") not in got["host_filesystem_size_bytes"]
    real = os.statvfs(staged / "rootfs" / "data")
    assert got["host_filesystem_size_bytes"][("/dev/sdd1", "/data", "ext4")] == real.f_blocks * real.f_frsize


def test_include_and_exclude(staged: Path) -> None:
    got = host(staged,
               filesystems={"mountpoint_include": "^/(data|run)$", "fstype_exclude": "^tmpfs$"},
               disks={"device_include": "^(vd|nvme)", "device_exclude": None},
               network={"device_exclude": "^(lo|veth)"})
    assert {labels[1] for labels in got["host_filesystem_size_bytes"]} == {"/data"}
    assert set(got["host_disk_reads_completed_total"]) == {("vda",), ("vda1",), ("nvme0n1",), ("nvme0n1p1",)}
    assert set(got["host_network_receive_bytes_total"]) == {("eth0",)}


def test_memory_detail_and_vmstat(staged: Path) -> None:
    got = host(staged)
    kib = 1024
    assert got["host_memory_dirty_bytes"][()] == 332 * kib
    assert got["host_memory_writeback_bytes"][()] == 12 * kib
    assert got["host_memory_slab_reclaimable_bytes"][()] == 23252 * kib
    assert got["host_memory_slab_unreclaimable_bytes"][()] == 61784 * kib
    assert got["host_memory_shmem_bytes"][()] == 24504 * kib
    assert got["host_memory_anon_bytes"][()] == 136108 * kib
    assert got["host_memory_committed_bytes"][()] == 430692 * kib
    assert got["host_memory_commit_limit_bytes"][()] == 12341796 * kib
    assert got["host_oom_kills_total"][()] == 3
    assert got["host_major_page_faults_total"][()] == 77


def test_memory_detail_a_kernel_lacks_is_left_out(staged: Path) -> None:
    (staged / "proc" / "meminfo").write_text("MemTotal: 1000 kB\nMemFree: 100 kB\nDirty: 4 kB\n")
    (staged / "proc" / "vmstat").write_text("pswpin 1\npswpout 2\npgmajfault 5\n")  # Linux < 4.13: no oom_kill
    got = host(staged)
    assert got["host_memory_dirty_bytes"][()] == 4096
    assert "host_memory_committed_bytes" not in got
    assert "host_oom_kills_total" not in got
    assert got["host_major_page_faults_total"][()] == 5


def test_pressure_in_seconds(staged: Path) -> None:
    got = host(staged)
    assert got["host_pressure_cpu_waiting_seconds_total"][()] == 5420.589156
    assert got["host_pressure_memory_waiting_seconds_total"][()] == 0.0015
    assert got["host_pressure_memory_stalled_seconds_total"][()] == 0.0007
    assert got["host_pressure_io_waiting_seconds_total"][()] == 96.048877
    assert got["host_pressure_io_stalled_seconds_total"][()] == 18.819755


def test_no_pressure_files_means_no_series_and_no_warning(staged: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A kernel before 4.20 or without CONFIG_PSI has no /proc/pressure: not a failure."""
    for resource in PRESSURE:
        (staged / "proc" / "pressure" / resource).unlink()
    (staged / "proc" / "pressure").rmdir()
    caplog.set_level("DEBUG", logger="exporter.collectors.host")
    got = host(staged)
    assert not [name for name in got if "pressure" in name]
    assert got["host_cpus"][()] == 2
    assert not [r for r in caplog.records if r.levelno >= 30]
    absent = [r for r in caplog.records if r.getMessage().startswith("host file absent")]
    assert {r.path for r in absent} == {str(staged / "proc" / "pressure" / r) for r in PRESSURE}  # type: ignore


def test_per_cpu_time_only_when_switched_on(staged: Path) -> None:
    assert "host_per_cpu_seconds_total" not in host(staged)
    got = host(staged, per_cpu=True)["host_per_cpu_seconds_total"]
    assert len(got) == 2 * len(H.CPU_MODES)
    assert got[("1", "user")] == 3385 / CLK_TCK
    assert got[("0", "steal")] == 13 / CLK_TCK


def test_udp_buffer_errors_add_ipv4_and_ipv6(staged: Path) -> None:
    got = host(staged)
    assert got["host_udp_receive_buffer_errors_total"][()] == 279569 + 2
    assert got["host_udp_in_errors_total"][()] == 279570 + 3


def test_link_state_carrier_and_speed(staged: Path) -> None:
    got = host(staged)
    assert got["host_network_up"] == {("eth0",): 1, ("lo",): 0, ("ifb0",): 0, ("veth12ab",): 1}
    assert got["host_network_carrier"] == {("eth0",): 1, ("lo",): 1, ("veth12ab",): 1}
    assert got["host_network_speed_bytes"] == {("eth0",): 125_000_000}
    filtered = host(staged, network={"device_exclude": "^(lo|veth)"})
    assert set(filtered["host_network_up"]) == {("eth0",), ("ifb0",)}


def test_link_speed_is_read_again_only_after_its_ttl(staged: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = H.Config.model_validate({"proc_root": str(staged / "proc"), "sys_root": str(staged / "sys"),
                                   "rootfs": str(staged / "rootfs")})
    speed = staged / "sys" / "class" / "net" / "eth0" / "speed"

    async def twice() -> list[dict]:
        collector = H.HostCollector(cfg)
        try:
            first = values(await collector.collect())
            speed.write_text("10000\n")
            second = values(await collector.collect())
            monkeypatch.setattr(H, "SPEED_TTL", -1.0)
            third = values(await collector.collect())
            return [first, second, third]
        finally:
            await collector.close()

    readings = [got["host_network_speed_bytes"][("eth0",)] for got in run(twice)]
    assert readings == [125_000_000, 125_000_000, 1_250_000_000]


def test_no_sysfs_means_no_link_series(staged: Path, caplog: pytest.LogCaptureFixture) -> None:
    got = host(staged, sys_root=str(staged / "nowhere"))
    assert "host_network_up" not in got
    assert got["host_network_receive_bytes_total"][("eth0",)] == 62096518
    assert not [r for r in caplog.records if r.levelno >= 30]


def test_filesystems_readonly_flag(staged: Path) -> None:
    got = host(staged)
    assert got["host_filesystem_readonly"][("/dev/sdd1", "/data", "ext4")] == 0
    assert ("/dev/sde1", "/missing", "ext4") not in got["host_filesystem_readonly"]


READONLY_MOUNT = r"""
import json, subprocess, sys
from pathlib import Path
from exporter.collectors import host as H
from tests.collectors.helpers import collect_once, run
work = Path(sys.argv[1])
for name, options in (("ro", "ro,size=1m"), ("rw", "size=1m")):
    (work / name).mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "apm-test-" + name, str(work / name)], check=True)
(work / "proc" / "self").mkdir(parents=True)
mounts = [line for line in Path("/proc/self/mounts").read_text().splitlines() if str(work) in line]
(work / "proc" / "self" / "mounts").write_text("\n".join(mounts) + "\n")
cfg = H.Config(proc_root=str(work / "proc"))
got = run(lambda: collect_once(H.HostCollector(cfg)))["host_filesystem_readonly"]
options = {line.split()[1]: line.split()[3].split(",") for line in mounts}
print(json.dumps({"ours": {labels[1]: v for labels, v in got.items()},
                  "options": {point: "ro" in opts for point, opts in options.items()}}))
"""


def test_a_read_only_mount_is_reported_as_its_mount_options_say(tmp_path: Path) -> None:
    """Two real tmpfs mounts, one read-only, in a private mount namespace (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare(1)")
    result = subprocess.run([unshare, "--mount", "--propagation", "private", sys.executable, "-c", READONLY_MOUNT,
                             str(tmp_path)],
                            check=False, capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert len(seen["ours"]) == 2
    assert {point: bool(v) for point, v in seen["ours"].items()} == seen["options"]
    assert sorted(seen["options"].values()) == [False, True]


def test_clock_offset_units_follow_sta_nano() -> None:
    micro = T.clock(0, 0x0001, 1500, 16_000_000, 250)
    assert micro == T.Clock(True, 0.0015, 16.0, 0.00025)
    nano = T.clock(T.TIME_ERROR, T.STA_NANO | 0x0040, 1500, 1000, 0)
    assert nano == T.Clock(False, 1.5e-6, 0.001, 0.0)


def test_tcp_counters(staged: Path) -> None:
    got = host(staged)
    assert got["host_tcp_out_segments_total"][()] == 5243722
    assert got["host_tcp_retransmitted_segments_total"][()] == 3778
    assert got["host_tcp_in_errors_total"][()] == 4
    assert got["host_tcp_out_resets_total"][()] == 166318
    assert got["host_tcp_established"][()] == 26
    assert got["host_tcp_listen_overflows_total"][()] == 62
    assert got["host_tcp_listen_drops_total"][()] == 63
    assert got["host_tcp_syncookies_sent_total"][()] == 5


def test_softnet_sums_the_cpus_hexadecimal_columns(staged: Path) -> None:
    got = host(staged)
    assert got["host_softnet_processed_total"][()] == 0x7F6C20 + 0x11A9EE0
    assert got["host_softnet_dropped_total"][()] == 10
    assert got["host_softnet_times_squeezed_total"][()] == 2 + 15


def test_conntrack_fill(staged: Path) -> None:
    got = host(staged)
    assert (got["host_conntrack_entries"][()], got["host_conntrack_entries_limit"][()]) == (1200, 262144)


def test_without_conntrack_netstat_or_softnet_only_their_series_go(staged: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """No nf_conntrack module loaded, a kernel without /proc/net/netstat: no series, no warning."""
    netfilter = staged / "proc" / "sys" / "net" / "netfilter"
    for name in ("nf_conntrack_count", "nf_conntrack_max"):
        (netfilter / name).unlink()
    netfilter.rmdir()
    (staged / "proc" / "net" / "netstat").unlink()
    (staged / "proc" / "net" / "softnet_stat").unlink()
    got = host(staged)
    assert not [name for name in got if "conntrack" in name or "softnet" in name]
    assert "host_tcp_listen_overflows_total" not in got
    assert got["host_tcp_retransmitted_segments_total"][()] == 3778
    assert got["host_udp_receive_buffer_errors_total"][()] == 279569 + 2
    assert not [r for r in caplog.records if r.levelno >= 30]


def test_an_unreadable_section_costs_only_its_families(staged: Path, caplog: pytest.LogCaptureFixture) -> None:
    (staged / "proc" / "diskstats").unlink()
    (staged / "proc" / "meminfo").write_text("garbage\n")
    got = host(staged)
    assert "host_disk_read_bytes_total" not in got
    assert "host_memory_total_bytes" not in got
    assert got["host_cpus"][()] == 2
    assert got["host_network_receive_bytes_total"][("eth0",)] == 62096518
    assert {r.section for r in caplog.records if hasattr(r, "section")} == {"disks", "memory"}  # type: ignore


# --- this machine -----------------------------------------------------------------------------

def collect_real(**config: object) -> dict:
    return run(lambda: collect_once(H.HostCollector(H.Config.model_validate(config))))


def test_real_values_agree_with_psutil() -> None:
    cpu_before, net_before = psutil.cpu_times(), psutil.net_io_counters(pernic=True)
    got = collect_real()
    cpu_after = psutil.cpu_times()
    vm = psutil.virtual_memory()
    assert got["host_memory_total_bytes"][()] == vm.total
    assert got["host_swap_total_bytes"][()] == psutil.swap_memory().total
    assert got["host_cpus"][()] == psutil.cpu_count()
    assert got["host_boot_time_seconds"][()] == pytest.approx(psutil.boot_time(), abs=1)
    for mode in ("user", "system", "idle"):
        ours = got["host_cpu_seconds_total"][(mode,)]
        assert getattr(cpu_before, mode) - 0.011 <= ours <= getattr(cpu_after, mode) + 0.011
    assert got["host_load1"][()] == pytest.approx(os.getloadavg()[0], abs=1)
    root = next(labels for labels in got["host_filesystem_size_bytes"] if labels[1] == "/")
    assert got["host_filesystem_size_bytes"][root] == psutil.disk_usage("/").total
    for (dev,), value in got["host_network_receive_bytes_total"].items():
        assert value >= net_before[dev].bytes_recv
    assert got["host_filefd_maximum"][()] == int(Path("/proc/sys/fs/file-nr").read_text().split()[2])
    assert not any(labels[1].startswith(("/proc", "/sys")) for labels in got["host_filesystem_size_bytes"])


def test_real_include_filters() -> None:
    got = collect_real(network={"device_include": "^lo$"}, filesystems={"mountpoint_include": "^/$"})
    assert set(got["host_network_receive_bytes_total"]) == {("lo",)}
    assert {labels[1] for labels in got["host_filesystem_size_bytes"]} == {"/"}


def test_real_exposition_is_clean(promtool: Callable[[str], str]) -> None:
    text = render(run(lambda: families_once(H.HostCollector(H.Config())))).decode()
    assert promtool(text) == ""
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    assert parsed["apm_host_cpu_seconds"].type == "counter"
    assert parsed["apm_host_memory_total_bytes"].type == "gauge"
    assert all(f.documentation for f in parsed.values())


def test_node_exporter_sees_the_same_filesystems_and_disks() -> None:
    """Given our default patterns (upstream node_exporter's; Debian's package changes them, and
    also excludes /mnt, /media, /run and lo), node_exporter picks the same mounts and disks."""
    with node_exporter("--collector.filesystem", "--collector.diskstats",
                       f"--collector.filesystem.mount-points-exclude={H.DEFAULT_MOUNTPOINT_EXCLUDE}",
                       f"--collector.filesystem.fs-types-exclude={H.DEFAULT_FSTYPE_EXCLUDE}",
                       f"--collector.diskstats.device-exclude={H.DEFAULT_DISK_EXCLUDE}") as node:
        samples = node.scrape()
    node_points = {dict(labels)["mountpoint"] for labels in samples["node_filesystem_size_bytes"]}
    node_disks = {dict(labels)["device"] for labels in samples["node_disk_reads_completed_total"]}
    got = collect_real()
    assert {labels[1] for labels in got["host_filesystem_size_bytes"]} == node_points
    assert {labels[0] for labels in got["host_disk_reads_completed_total"]} == node_disks
