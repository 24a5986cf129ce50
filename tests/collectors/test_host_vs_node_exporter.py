"""The host collector's figures against Debian's node_exporter 1.5 scraped side by side on this machine.

Each test reads ours, then node_exporter's, then ours again: a counter node_exporter read
must lie between our two readings (give or take a clock tick of rounding), and a gauge must
agree within a tolerance wide enough for a busy machine but far narrower than a unit error
(kB for bytes is 1024x, microseconds for seconds a million).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from exporter.collectors import host as H
from tests.collectors.helpers import collect_once, run
from tests.support.node_exporter import NodeExporter, Samples, node_exporter

MIB = 1 << 20
TICK = 0.011  # one clock tick of rounding (USER_HZ 100), as both divide ticks by it


@pytest.fixture(scope="module")
def node() -> Iterator[NodeExporter]:
    with node_exporter("--collector.pressure", "--collector.vmstat", "--collector.meminfo",
                       "--collector.cpu", "--collector.netstat", "--collector.softnet",
                       "--collector.conntrack", "--collector.netclass", "--collector.timex",
                       "--collector.filesystem",
                       f"--collector.filesystem.mount-points-exclude={H.DEFAULT_MOUNTPOINT_EXCLUDE}",
                       f"--collector.filesystem.fs-types-exclude={H.DEFAULT_FSTYPE_EXCLUDE}") as exporter:
        yield exporter


def ours(**config: Any) -> dict[str, dict[tuple[str, ...], Any]]:
    return run(lambda: collect_once(H.HostCollector(H.Config.model_validate(config))))


def bracket(node: NodeExporter, **config: Any) -> tuple[dict, Samples, dict]:
    before = ours(**config)
    theirs = node.scrape()
    return before, theirs, ours(**config)


def one(samples: Samples, name: str) -> float:
    """A sample's value; `a+b` adds samples, and a per-CPU family (softnet) is summed as ours is."""
    return sum(sum(samples[part].values()) for part in name.split("+"))


def between(before: float, theirs: float, after: float, slack: float = 0.0) -> bool:
    return before - slack <= theirs <= after + slack


@pytest.mark.parametrize("ours_name, node_name", [
    ("host_pressure_cpu_waiting_seconds_total", "node_pressure_cpu_waiting_seconds_total"),
    ("host_pressure_memory_waiting_seconds_total", "node_pressure_memory_waiting_seconds_total"),
    ("host_pressure_memory_stalled_seconds_total", "node_pressure_memory_stalled_seconds_total"),
    ("host_pressure_io_waiting_seconds_total", "node_pressure_io_waiting_seconds_total"),
    ("host_pressure_io_stalled_seconds_total", "node_pressure_io_stalled_seconds_total"),
    ("host_major_page_faults_total", "node_vmstat_pgmajfault"),
    ("host_oom_kills_total", "node_vmstat_oom_kill"),
    ("host_tcp_out_segments_total", "node_netstat_Tcp_OutSegs"),
    ("host_tcp_retransmitted_segments_total", "node_netstat_Tcp_RetransSegs"),
    ("host_tcp_in_errors_total", "node_netstat_Tcp_InErrs"),
    ("host_tcp_out_resets_total", "node_netstat_Tcp_OutRsts"),
    ("host_tcp_listen_overflows_total", "node_netstat_TcpExt_ListenOverflows"),
    ("host_tcp_listen_drops_total", "node_netstat_TcpExt_ListenDrops"),
    ("host_tcp_syncookies_sent_total", "node_netstat_TcpExt_SyncookiesSent"),
    ("host_udp_receive_buffer_errors_total", "node_netstat_Udp_RcvbufErrors+node_netstat_Udp6_RcvbufErrors"),
    ("host_udp_in_errors_total", "node_netstat_Udp_InErrors+node_netstat_Udp6_InErrors"),
    ("host_softnet_processed_total", "node_softnet_processed_total"),
    ("host_softnet_dropped_total", "node_softnet_dropped_total"),
    ("host_softnet_times_squeezed_total", "node_softnet_times_squeezed_total"),
])
def test_counters_match(node: NodeExporter, ours_name: str, node_name: str) -> None:
    """Pressure, vmstat, TCP and UDP (node_exporter's netstat) and softnet counters."""
    before, theirs, after = bracket(node)
    assert between(before[ours_name][()], one(theirs, node_name), after[ours_name][()], 1e-6), \
        (before[ours_name][()], one(theirs, node_name), after[ours_name][()])


@pytest.mark.parametrize("ours_name, node_name", [
    ("host_memory_dirty_bytes", "node_memory_Dirty_bytes"),
    ("host_memory_writeback_bytes", "node_memory_Writeback_bytes"),
    ("host_memory_slab_reclaimable_bytes", "node_memory_SReclaimable_bytes"),
    ("host_memory_slab_unreclaimable_bytes", "node_memory_SUnreclaim_bytes"),
    ("host_memory_shmem_bytes", "node_memory_Shmem_bytes"),
    ("host_memory_anon_bytes", "node_memory_AnonPages_bytes"),
    ("host_memory_committed_bytes", "node_memory_Committed_AS_bytes"),
    ("host_memory_commit_limit_bytes", "node_memory_CommitLimit_bytes"),
])
def test_memory_detail_matches(node: NodeExporter, ours_name: str, node_name: str) -> None:
    before, theirs, after = bracket(node)
    low, high = sorted((before[ours_name][()], after[ours_name][()]))
    assert low - 64 * MIB <= one(theirs, node_name) <= high + 64 * MIB


def test_conntrack_matches(node: NodeExporter) -> None:
    before, theirs, after = bracket(node)
    if "node_nf_conntrack_entries" not in theirs:
        assert "host_conntrack_entries" not in before  # no nf_conntrack module here: neither reports it
        return
    assert one(theirs, "node_nf_conntrack_entries_limit") == before["host_conntrack_entries_limit"][()]
    low, high = sorted((before["host_conntrack_entries"][()], after["host_conntrack_entries"][()]))
    assert low - 100 <= one(theirs, "node_nf_conntrack_entries") <= high + 100


def test_per_cpu_time_matches(node: NodeExporter) -> None:
    before, theirs, after = bracket(node, per_cpu=True)
    node_cpu = {(dict(k)["cpu"], dict(k)["mode"]): v for k, v in theirs["node_cpu_seconds_total"].items()}
    assert node_cpu, "node_exporter reported no per-CPU time"
    for key, value in node_cpu.items():
        assert between(before["host_per_cpu_seconds_total"][key], value,
                       after["host_per_cpu_seconds_total"][key], TICK), key
    assert {cpu for cpu, _ in before["host_per_cpu_seconds_total"]} == {cpu for cpu, _ in node_cpu}


def by_device(samples: Samples, name: str) -> dict[tuple[str, ...], float]:
    return {(dict(labels)["device"],): value for labels, value in samples.get(name, {}).items()}


def test_link_state_matches(node: NodeExporter) -> None:
    before, theirs, after = bracket(node)
    assert by_device(theirs, "node_network_up") == before["host_network_up"] == after["host_network_up"]
    assert by_device(theirs, "node_network_carrier") == before["host_network_carrier"]
    # node_exporter reports an unknown speed (-1 Mbit/s) as -125000; we leave it out.
    node_speed = {dev: v for dev, v in by_device(theirs, "node_network_speed_bytes").items() if v > 0}
    assert node_speed == before.get("host_network_speed_bytes", {})


def test_filesystem_readonly_matches(node: NodeExporter) -> None:
    before, theirs, _ = bracket(node)
    node_ro = {(dict(k)["device"], dict(k)["mountpoint"], dict(k)["fstype"]): v
               for k, v in theirs["node_filesystem_readonly"].items()}
    assert node_ro == before["host_filesystem_readonly"]


def test_clock_matches(node: NodeExporter) -> None:
    before, theirs, after = bracket(node)
    assert one(theirs, "node_timex_sync_status") == before["host_timex_sync_status"][()]
    for ours_name, node_name in (("host_timex_offset_seconds", "node_timex_offset_seconds"),
                                 ("host_timex_maxerror_seconds", "node_timex_maxerror_seconds"),
                                 ("host_timex_estimated_error_seconds", "node_timex_estimated_error_seconds")):
        low, high = sorted((before[ours_name][()], after[ours_name][()]))
        # maxerror grows by 500 ppm of elapsed time between the kernel's updates
        assert low - 0.01 <= one(theirs, node_name) <= high + 0.01, ours_name
