"""Process groups: real child processes found by cmdline, name and pidfile; a fake /proc for
the cases a real one cannot stage on demand (pid reuse, exits between scrapes)."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from exporter.collectors import process as P
from exporter.exposition import render
from tests.collectors.helpers import run, values

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def collect(config: P.Config | P.ProcessCollector) -> dict:
    collector = config if isinstance(config, P.ProcessCollector) else P.ProcessCollector(config)
    return values(run(collector.collect))


def group(name: str, **matcher: str) -> P.Group:
    return P.Group.model_validate({"name": name, **matcher})


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    children: list[subprocess.Popen[bytes]] = []

    def start(*argv: str, settle: bool = True) -> subprocess.Popen[bytes]:
        # Popen returns once exec has succeeded, so /proc already shows the new command line.
        child = subprocess.Popen(list(argv))
        children.append(child)
        if settle:
            _settle(child.pid)
        return child

    yield start
    for child in children:
        child.kill()
        child.wait()


def _settle(pid: int) -> None:
    """Wait until a fresh child has faulted in its pages and sleeps, so its RSS holds still."""
    proc = psutil.Process(pid)
    last, steady, deadline = -1, 0, time.monotonic() + 30
    while steady < 3 and time.monotonic() < deadline:
        rss = proc.memory_info().rss
        steady = steady + 1 if rss == last and proc.status() == psutil.STATUS_SLEEPING else 0
        last = rss
        time.sleep(0.02)


# --- parsers -------------------------------------------------------------------------------

def test_parse_pid_stat_name_with_spaces_and_parens() -> None:
    text = ("4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 3 0 123456 "
            "104857600 2560 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n")
    st = P.parse_pid_stat(text)
    assert st == P.PidStat("my (odd) name", 250, 75, 3, 123456, 104857600, 2560, "S", 0)


def test_parse_statm() -> None:
    assert P.parse_statm("731 417 358 5 0 89 0\n") == (731, 417)


def test_parse_pid_io() -> None:
    text = ("rchar: 9000\nwchar: 8000\nsyscr: 10\nsyscw: 5\nread_bytes: 4096\nwrite_bytes: 12288\n"
            "cancelled_write_bytes: 0\n")
    assert P.parse_pid_io(text) == (4096, 12288)


@pytest.mark.parametrize("text, pid", [("1234\n", 1234), (" 77 \n", 77), ("", None), ("abc", None),
                                       ("0\n", None), ("-5", None), ("12\nextra\n", 12)])
def test_parse_pidfile(text: str, pid: int | None) -> None:
    assert P.parse_pidfile(text) == pid


def test_process_name_completes_truncated_comm_from_argv0() -> None:
    assert P.process_name("apm-test-long-s", "/opt/bin/apm-test-long-sleeper 5") == "apm-test-long-sleeper"
    assert P.process_name("apm-test-long-s", "/usr/bin/python3 x") == "apm-test-long-s"
    assert P.process_name("short", "/usr/bin/something-else") == "short"


@pytest.mark.parametrize("bad", [
    {"name": "a"},
    {"name": "a", "name_regex": "x", "pidfile": "/run/x.pid"},
    {"name": "", "name_regex": "x"},
    {"name": "a", "cmdline_regex": "("},
])
def test_group_needs_exactly_one_valid_matcher(bad: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        P.Config.model_validate({"groups": [bad]})


def test_group_names_are_unique() -> None:
    with pytest.raises(ValidationError, match="unique"):
        P.Config(groups=[group("a", name_regex="x"), group("a", pidfile="/x")])


def test_no_groups_no_families() -> None:
    assert run(P.ProcessCollector(P.Config()).collect) == []


# --- real processes ------------------------------------------------------------------------

def test_cmdline_regex_matches_a_real_child(spawn: Callable[..., subprocess.Popen[bytes]]) -> None:
    child = spawn("sleep", "314159")
    got = collect(P.Config(groups=[group("app", cmdline_regex=r"^sleep 314159$")]))
    ref = psutil.Process(child.pid)
    assert got["process_processes"][("app",)] == 1
    assert got["process_resident_memory_bytes"][("app",)] == ref.memory_info().rss
    assert got["process_virtual_memory_bytes"][("app",)] == ref.memory_info().vms
    assert got["process_threads"][("app",)] == 1
    assert got["process_open_fds"][("app",)] == ref.num_fds()
    start = got["process_oldest_start_time_seconds"][("app",)]
    assert abs(start - ref.create_time()) <= 1 / CLK_TCK + 0.01
    cpu = got["process_cpu_seconds_total"]
    assert set(cpu) == {("app", "user"), ("app", "system")}
    assert cpu[("app", "user")] == pytest.approx(ref.cpu_times().user)
    io = ref.io_counters()
    assert got["process_read_bytes_total"][("app",)] == io.read_bytes
    assert got["process_written_bytes_total"][("app",)] == io.write_bytes


def test_name_regex_with_a_name_longer_than_comm(spawn: Callable[..., subprocess.Popen[bytes]],
                                                 tmp_path: Path) -> None:
    binary = tmp_path / "apm-test-long-sleeper"  # 21 bytes: the kernel keeps 15 in comm
    shutil.copy(shutil.which("sleep") or "/bin/sleep", binary)
    children = [spawn(str(binary), "1000") for _ in range(3)]
    got = collect(P.Config(groups=[group("long", name_regex=r"^apm-test-long-sleeper$"),
                                   group("truncated", name_regex=r"^apm-test-long-s$")]))
    assert got["process_processes"][("long",)] == 3
    assert got["process_processes"][("truncated",)] == 0
    assert got["process_resident_memory_bytes"][("long",)] == sum(
        psutil.Process(c.pid).memory_info().rss for c in children)
    oldest = min(psutil.Process(c.pid).create_time() for c in children)
    assert abs(got["process_oldest_start_time_seconds"][("long",)] - oldest) <= 1 / CLK_TCK + 0.01
    assert ("truncated",) not in got["process_oldest_start_time_seconds"]


def test_pidfile(spawn: Callable[..., subprocess.Popen[bytes]], tmp_path: Path) -> None:
    child = spawn("sleep", "271828")
    pidfile, missing, garbage = tmp_path / "app.pid", tmp_path / "missing.pid", tmp_path / "garbage.pid"
    pidfile.write_text(f"{child.pid}\n")
    garbage.write_text("not a pid\n")
    got = collect(P.Config(groups=[group("app", pidfile=str(pidfile)), group("missing", pidfile=str(missing)),
                                   group("garbage", pidfile=str(garbage))]))
    assert got["process_processes"] == {("app",): 1, ("missing",): 0, ("garbage",): 0}
    assert got["process_resident_memory_bytes"][("app",)] == psutil.Process(child.pid).memory_info().rss
    assert got["process_resident_memory_bytes"][("missing",)] == 0


def test_new_and_exited_processes_between_scrapes(spawn: Callable[..., subprocess.Popen[bytes]]) -> None:
    collector = P.ProcessCollector(P.Config(groups=[group("app", cmdline_regex=r"^sleep 1618033$")]))
    assert collect(collector)["process_processes"][("app",)] == 0
    first = spawn("sleep", "1618033")
    spawn("sleep", "1618033")
    assert collect(collector)["process_processes"][("app",)] == 2
    first.kill()
    first.wait()
    assert collect(collector)["process_processes"][("app",)] == 1


def test_cpu_counter_survives_a_process_exit(spawn: Callable[..., subprocess.Popen[bytes]]) -> None:
    # A busy child burns measurable CPU; its seconds must stay in the group's counter after it exits.
    busy = spawn("sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; exec sleep 1000", "apm-burner",
                 settle=False)
    collector = P.ProcessCollector(P.Config(groups=[group("burn", cmdline_regex=r"apm-burner")]))
    deadline = time.monotonic() + 60
    while True:
        got = collect(collector)
        total = sum(got["process_cpu_seconds_total"].values())
        if total >= 0.05 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert total >= 0.05
    busy.kill()
    busy.wait()
    after = collect(collector)
    assert after["process_processes"][("burn",)] == 0
    assert sum(after["process_cpu_seconds_total"].values()) >= total


def test_exposition_is_clean(spawn: Callable[..., subprocess.Popen[bytes]], tmp_path: Path,
                             promtool: Callable[[str], str]) -> None:
    spawn("sleep", "141421")
    collector = P.ProcessCollector(P.Config(groups=[
        group("app", cmdline_regex=r"^sleep 141421$"), group("py", name_regex=r"^python"),
        group("none", pidfile=str(tmp_path / "none.pid"))]))
    text = render(run(collector.collect)).decode()
    assert promtool(text) == ""
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    assert parsed["apm_process_cpu_seconds"].type == "counter"
    assert {s.labels["group"] for s in parsed["apm_process_processes"].samples} == {"app", "py", "none"}


# --- a fake /proc: pid reuse and exits, staged exactly ---------------------------------------

def _stat_line(pid: int, comm: str, utime: int, start: int, rss_pages: int = 100, state: str = "S",
               majflt: int = 0) -> str:
    return (f"{pid} ({comm}) {state} 1 {pid} {pid} 0 -1 0 0 0 {majflt} 0 {utime} 0 0 0 20 0 1 0 {start} 4096000 "
            f"{rss_pages} 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n")


class FakeProc:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        (root / "stat").write_text("cpu  1 2 3 4\nbtime 1700000000\n")

    def add(self, pid: int, cmdline: str, utime: int = 0, start: int = 1000, read: int = 0, state: str = "S",
            majflt: int = 0) -> None:
        d = self.root / str(pid)
        (d / "fd").mkdir(parents=True, exist_ok=True)
        (d / "stat").write_text(_stat_line(pid, cmdline.split()[0][:15], utime, start, state=state, majflt=majflt))
        (d / "cmdline").write_bytes(cmdline.replace(" ", "\0").encode() + b"\0")
        (d / "statm").write_text("1000 100 50 10 0 200 0\n")
        (d / "io").write_text(f"rchar: 0\nwchar: 0\nread_bytes: {read}\nwrite_bytes: 0\n")

    def remove(self, pid: int) -> None:
        shutil.rmtree(self.root / str(pid))


def test_fake_proc_counters_carry_exited_processes(tmp_path: Path) -> None:
    proc = FakeProc(tmp_path / "proc")
    proc.add(10, "worker --id 1", utime=5 * CLK_TCK, read=1000)
    proc.add(11, "worker --id 2", utime=3 * CLK_TCK, read=500)
    proc.add(12, "other")
    collector = P.ProcessCollector(P.Config(proc_root=str(proc.root), groups=[group("w", cmdline_regex="^worker")]))
    got = collect(collector)
    assert got["process_processes"][("w",)] == 2
    assert got["process_cpu_seconds_total"][("w", "user")] == 8
    assert got["process_read_bytes_total"][("w",)] == 1500
    assert got["process_resident_memory_bytes"][("w",)] == 200 * PAGE
    assert got["process_oldest_start_time_seconds"][("w",)] == 1700000000 + 1000 / CLK_TCK
    proc.remove(10)
    proc.add(11, "worker --id 2", utime=4 * CLK_TCK, read=700)
    got = collect(collector)
    assert got["process_processes"][("w",)] == 1
    assert got["process_cpu_seconds_total"][("w", "user")] == 9  # 5 from the exited worker, 4 live
    assert got["process_read_bytes_total"][("w",)] == 1700


def test_fake_proc_pid_reuse_is_noticed(tmp_path: Path) -> None:
    proc = FakeProc(tmp_path / "proc")
    proc.add(20, "worker", utime=7 * CLK_TCK, start=1000)
    collector = P.ProcessCollector(P.Config(proc_root=str(proc.root), groups=[group("w", cmdline_regex="^worker")]))
    for _ in range(3):  # past the second look, so only the start time can reveal the reuse
        assert collect(collector)["process_processes"][("w",)] == 1
    proc.add(20, "intruder", utime=1 * CLK_TCK, start=5000)
    got = collect(collector)
    assert got["process_processes"][("w",)] == 0
    assert got["process_cpu_seconds_total"][("w", "user")] == 7


def test_fake_proc_exec_after_first_look(tmp_path: Path) -> None:
    # Caught between fork and exec: the pid first shows the parent's command line.
    proc = FakeProc(tmp_path / "proc")
    proc.add(30, "launcher", start=2000)
    collector = P.ProcessCollector(P.Config(proc_root=str(proc.root), groups=[group("w", cmdline_regex="^worker")]))
    assert collect(collector)["process_processes"][("w",)] == 0
    proc.add(30, "worker", start=2000)
    assert collect(collector)["process_processes"][("w",)] == 1


def test_fake_proc_vanished_pid_is_skipped(tmp_path: Path) -> None:
    proc = FakeProc(tmp_path / "proc")
    (proc.root / "40").mkdir()  # listed, but its files are already gone
    proc.add(41, "worker")
    got = collect(P.Config(proc_root=str(proc.root), groups=[group("w", cmdline_regex="^worker"),
                                                             group("n", name_regex="worker")]))
    assert got["process_processes"] == {("w",): 1, ("n",): 1}


# --- what process-exporter adds: states, faults, context switches, swap, PSS, fd limits ---------

def test_parse_status_smaps_rollup_and_limits() -> None:
    status = ("Name:\tworker\nState:\tS (sleeping)\nVmSwap:\t    2048 kB\n"
              "voluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n")
    assert P.parse_pid_status(status) == P.PidStatus(120, 7, 2048 * 1024)
    assert P.parse_pid_status("Name:\tkthreadd\n") == P.PidStatus(0, 0, 0)  # kernel threads have no VmSwap
    rollup = "55d0-7ffd ---p 00000000 00:00 0  [rollup]\nRss:   4096 kB\nPss:   1500 kB\nPss_Anon:  900 kB\n"
    assert P.parse_smaps_rollup_pss(rollup) == 1500 * 1024
    limits = ("Limit                     Soft Limit           Hard Limit           Units     \n"
              "Max open files            1024                 524288               files     \n")
    assert P.parse_fd_limit(limits) == 1024
    assert P.parse_fd_limit(limits.replace("1024 ", "unlimited ")) is None


def test_fake_proc_states_faults_switches_and_exits(tmp_path: Path) -> None:
    proc = FakeProc(tmp_path / "proc")
    for pid, state, majflt in ((50, "D", 3), (51, "Z", 0), (52, "S", 4)):
        proc.add(pid, "worker", state=state, majflt=majflt)
        (proc.root / str(pid) / "status").write_text(
            f"voluntary_ctxt_switches:\t{pid}\nnonvoluntary_ctxt_switches:\t1\nVmSwap:\t4 kB\n")
    collector = P.ProcessCollector(P.Config(proc_root=str(proc.root), groups=[group("w", cmdline_regex="^worker")]))
    got = collect(collector)
    assert got["process_states"] == {("w", "running"): 0, ("w", "sleeping"): 1, ("w", "disk_sleep"): 1,
                                     ("w", "zombie"): 1, ("w", "stopped"): 0}
    assert got["process_major_page_faults_total"] == {("w",): 7}
    assert got["process_context_switches_total"] == {("w", "voluntary"): 50 + 51 + 52, ("w", "involuntary"): 3}
    assert got["process_swap_bytes"] == {("w",): 3 * 4096}
    assert got["process_proportional_memory_bytes"] == {("w",): 0}  # no smaps_rollup to read
    assert "process_open_fds_limit_ratio" not in got or got["process_open_fds_limit_ratio"] == {}
    proc.remove(50)
    after = collect(collector)
    # The exited process's faults and switches stay in the counters; its state and swap do not.
    assert after["process_major_page_faults_total"] == {("w",): 7}
    assert after["process_context_switches_total"][("w", "voluntary")] == 50 + 51 + 52
    assert after["process_states"][("w", "disk_sleep")] == 0
    assert after["process_swap_bytes"] == {("w",): 2 * 4096}


def test_a_real_zombie_and_its_parent(spawn: Callable[..., subprocess.Popen[bytes]]) -> None:
    # The child names itself, exits, and is never reaped: a zombie until the parent goes.
    code = ("import os, time\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    open('/proc/self/comm', 'w').write('apm-zombie')\n"
            "    os._exit(0)\n"
            "time.sleep(1000)\n")
    parent = spawn(sys.executable, "-c", code, settle=False)
    deadline = time.monotonic() + 15
    while not [c for c in psutil.Process(parent.pid).children() if c.status() == psutil.STATUS_ZOMBIE]:
        assert time.monotonic() < deadline, "the child never became a zombie"
        time.sleep(0.02)
    got = collect(P.Config(groups=[group("z", name_regex=r"^apm-zombie$")]))
    assert got["process_states"][("z", "zombie")] == 1
    assert got["process_processes"][("z",)] == 1


def test_real_switches_pss_swap_and_the_fd_limit_ratio(spawn: Callable[..., subprocess.Popen[bytes]]) -> None:
    code = "import os, resource, time\nfds = [os.open('/dev/null', os.O_RDONLY) for _ in range(13)]\ntime.sleep(1000)\n"

    def limit_fds() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    child = subprocess.Popen([sys.executable, "-c", code, "apm-fd-holder"], preexec_fn=limit_fds)
    try:
        ref = psutil.Process(child.pid)
        deadline = time.monotonic() + 15
        while ref.num_fds() < 16 or ref.status() != psutil.STATUS_SLEEPING:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        _settle(child.pid)
        # PSS shares pages with every process mapping the same files (each python the suite starts
        # or stops moves it): compare a collect bracketed by two equal psutil readings.
        for _ in range(50):
            before = ref.memory_full_info()
            got = collect(P.Config(groups=[group("h", cmdline_regex=r"apm-fd-holder")]))
            full = ref.memory_full_info()
            if (before.pss, before.swap) == (full.pss, full.swap):
                break
        else:
            pytest.fail("the holder's PSS never held still across a collect")
        switches = ref.num_ctx_switches()
        assert got["process_open_fds_limit_ratio"] == {("h",): ref.num_fds() / 64}
        assert got["process_proportional_memory_bytes"] == {("h",): full.pss}
        assert got["process_swap_bytes"] == {("h",): full.swap}
        assert got["process_context_switches_total"] == {("h", "voluntary"): switches.voluntary,
                                                         ("h", "involuntary"): switches.involuntary}
        assert got["process_states"][("h", "sleeping")] == 1
    finally:
        child.kill()
        child.wait()


def test_pss_false_skips_smaps_rollup(spawn: Callable[..., subprocess.Popen[bytes]]) -> None:
    spawn("sleep", "161803")
    got = collect(P.Config(pss=False, groups=[group("app", cmdline_regex=r"^sleep 161803$")]))
    assert "process_proportional_memory_bytes" not in got
    assert got["process_processes"][("app",)] == 1
