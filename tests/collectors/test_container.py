"""Container collector: cgroup v2 and v1 fixture trees (tests/fixtures/cgroup/) and this machine."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.collectors import container as C
from exporter.exposition import render
from tests.collectors.helpers import run, values

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "cgroup"
MiB = 1 << 20


def fixture(case: str) -> C.Config:
    return C.Config(cgroup_root=str(FIXTURES / case / "sys"), proc_root=str(FIXTURES / case / "proc"))


def collect(config: C.Config) -> dict:
    return values(run(C.ContainerCollector(config).collect))


# --- parsers -------------------------------------------------------------------------------

def test_parse_proc_cgroup_v2() -> None:
    assert C.parse_proc_cgroup("0::/kubepods.slice/pod1/app\n") == C.Membership("/kubepods.slice/pod1/app", {})


def test_parse_proc_cgroup_hybrid() -> None:
    m = C.parse_proc_cgroup("12:pids:/a\n4:cpu,cpuacct:/b\n1:name=systemd:/c\n0::/d\nbroken\n")
    assert m == C.Membership("/d", {"pids": "/a", "cpu": "/b", "cpuacct": "/b"})


@pytest.mark.parametrize("text, value", [("max\n", None), ("268435456\n", 268435456), ("0", 0)])
def test_parse_max(text: str, value: int | None) -> None:
    assert C.parse_max(text) == value


@pytest.mark.parametrize("text, cores", [("max 100000\n", None), ("150000 100000\n", 1.5), ("50000\n", 0.5)])
def test_parse_cpu_max(text: str, cores: float | None) -> None:
    assert C.parse_cpu_max(text) == cores


def test_v1_limits() -> None:
    assert C.v1_limit(9223372036854771712) is None
    assert C.v1_limit(536870912) == 536870912
    assert C.v1_cpu_limit(-1, 100000) is None
    assert C.v1_cpu_limit(50000, 100000) == 0.5
    assert C.v1_cpu_limit(None, None) is None


def test_candidates_shorten_from_the_left() -> None:
    assert C.candidates("/m", "/a/b") == ["/m/a/b", "/m/b", "/m"]
    assert C.candidates("/m", "/") == ["/m"]


# --- fixture trees -------------------------------------------------------------------------

def test_v2_with_limits() -> None:
    got = collect(fixture("v2"))
    assert got["container_memory_usage_bytes"][()] == 100 * MiB
    assert got["container_memory_limit_bytes"][()] == 256 * MiB
    assert got["container_memory_working_set_bytes"][()] == 80 * MiB  # usage - inactive_file
    assert got["container_memory_rss_bytes"][()] == 50 * MiB
    assert got["container_memory_cache_bytes"][()] == 40 * MiB
    assert got["container_memory_events_total"] == {
        ("low",): 0, ("high",): 3, ("max",): 7, ("oom",): 1, ("oom_kill",): 1, ("oom_group_kill",): 0}
    assert got["container_cpu_usage_seconds_total"][()] == 12.5
    assert got["container_cpu_user_seconds_total"][()] == 10.0
    assert got["container_cpu_system_seconds_total"][()] == 2.5
    assert got["container_cpu_cfs_periods_total"][()] == 400
    assert got["container_cpu_cfs_throttled_periods_total"][()] == 25
    assert got["container_cpu_cfs_throttled_seconds_total"][()] == 1.5
    assert got["container_cpu_limit_cores"][()] == 1.5
    assert got["container_pids"][()] == 12
    assert got["container_pids_limit"][()] == 1024


def test_v2_namespaced_without_limits() -> None:
    got = collect(fixture("v2-unlimited"))
    assert got["container_memory_usage_bytes"][()] == 8 * MiB
    assert got["container_pids"][()] == 3
    assert got["container_cpu_usage_seconds_total"][()] == 0.0005
    for absent in ("container_memory_limit_bytes", "container_cpu_limit_cores", "container_pids_limit"):
        assert absent not in got


def test_v1_on_a_hybrid_host() -> None:
    got = collect(fixture("v1"))
    assert got["container_memory_usage_bytes"][()] == 200 * MiB
    # memory.limit_in_bytes says unlimited; the parent's limit in memory.stat is the effective one.
    assert got["container_memory_limit_bytes"][()] == 512 * MiB
    assert got["container_memory_working_set_bytes"][()] == 160 * MiB
    assert got["container_memory_rss_bytes"][()] == 100 * MiB
    assert got["container_memory_cache_bytes"][()] == 80 * MiB
    assert got["container_memory_events_total"] == {("max",): 4, ("oom_kill",): 2}
    assert got["container_cpu_usage_seconds_total"][()] == 3.0
    assert got["container_cpu_user_seconds_total"][()] == 2.0
    assert got["container_cpu_system_seconds_total"][()] == 1.0
    assert got["container_cpu_cfs_periods_total"][()] == 100
    assert got["container_cpu_cfs_throttled_periods_total"][()] == 10
    assert got["container_cpu_cfs_throttled_seconds_total"][()] == 2.5
    assert got["container_cpu_limit_cores"][()] == 0.5
    assert got["container_pids"][()] == 7
    assert "container_pids_limit" not in got


def test_v1_old_kernel_cpuacct_stat_in_ticks(tmp_path: Path) -> None:
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "cgroup").write_text("3:cpuacct:/\n")
    (tmp_path / "sys" / "cpuacct").mkdir(parents=True)
    (tmp_path / "sys" / "cpuacct" / "cpuacct.usage").write_text("5000000000\n")
    (tmp_path / "sys" / "cpuacct" / "cpuacct.stat").write_text("user 300\nsystem 100\n")
    got = collect(C.Config(cgroup_root=str(tmp_path / "sys"), proc_root=str(tmp_path / "proc")))
    tck = os.sysconf("SC_CLK_TCK")
    assert got["container_cpu_usage_seconds_total"][()] == 5.0
    assert got["container_cpu_user_seconds_total"][()] == 300 / tck
    assert got["container_cpu_system_seconds_total"][()] == 100 / tck


def test_not_in_a_cgroup_gives_no_families(tmp_path: Path) -> None:
    assert run(C.ContainerCollector(C.Config(cgroup_root=str(tmp_path), proc_root=str(tmp_path))).collect) == []
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "cgroup").write_text("0::/somewhere\n")
    assert run(C.ContainerCollector(C.Config(cgroup_root=str(tmp_path / "none"),
                                             proc_root=str(tmp_path))).collect) == []


def test_garbage_files_are_left_out(tmp_path: Path) -> None:
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "cgroup").write_text("0::/\n")
    sys = tmp_path / "sys"
    sys.mkdir()
    (sys / "cgroup.controllers").write_text("memory pids\n")
    (sys / "memory.current").write_text("1024\n")
    (sys / "memory.max").write_text("lots\n")
    (sys / "pids.current").write_text("?\n")
    got = collect(C.Config(cgroup_root=str(sys), proc_root=str(tmp_path / "proc")))
    assert got["container_memory_usage_bytes"][()] == 1024
    assert "container_memory_limit_bytes" not in got and "container_pids" not in got


@pytest.mark.parametrize("case", ["v2", "v2-unlimited", "v1"])
def test_fixture_exposition_is_clean(case: str, promtool: Callable[[str], str]) -> None:
    text = render(run(C.ContainerCollector(fixture(case)).collect)).decode()
    assert promtool(text) == ""
    assert {f.name for f in text_string_to_metric_families(text)} >= {
        "apm_container_memory_usage_bytes", "apm_container_cpu_usage_seconds"}


# --- this machine -----------------------------------------------------------------------------

def _usage_seconds(layout: C.Layout) -> float | None:
    if layout.cpuacct is None:
        return None
    d, v2 = layout.cpuacct
    if v2:
        stat = dict(line.split() for line in Path(d, "cpu.stat").read_text().splitlines())
        return int(stat["usage_usec"]) / 1e6
    return int(Path(d, "cpuacct.usage").read_text()) / 1e9


def test_this_machine(promtool: Callable[[str], str]) -> None:
    """Whatever this machine's cgroup layout, what the collector reports is what the files say.
    (Here: a hybrid host, memory in a v1 child cgroup, cpu and cpuacct at the v1 root.)"""
    layout = C.resolve("/sys/fs/cgroup", C.parse_proc_cgroup(Path("/proc/self/cgroup").read_text()))
    usage_before = _usage_seconds(layout)
    fams = run(C.ContainerCollector(C.Config()).collect)
    usage_after = _usage_seconds(layout)
    got = values(fams)
    if layout == C.Layout(None, None, None, None):
        assert fams == []
        return
    if layout.memory:
        d, v2 = layout.memory
        assert got["container_memory_usage_bytes"][()] > 0
        if v2:
            raw = Path(d, "memory.max").read_text().strip()
            expected = None if raw == "max" else int(raw)
        else:
            stat = dict(line.split() for line in Path(d, "memory.stat").read_text().splitlines())
            limit = int(stat.get("hierarchical_memory_limit", Path(d, "memory.limit_in_bytes").read_text()))
            expected = limit if limit < C.V1_UNLIMITED else None
        assert got.get("container_memory_limit_bytes", {}).get(()) == expected
    if usage_before is not None and usage_after is not None:
        assert usage_before <= got["container_cpu_usage_seconds_total"][()] <= usage_after
    assert promtool(render(fams).decode()) == ""
