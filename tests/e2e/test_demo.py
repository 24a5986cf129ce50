"""scripts/demo brings every dashboard panel to data, and Ctrl-C stops everything it started.

The demo runs as a user runs it (scripts/demo, real Redis, memcached, PostgreSQL and PgBouncer,
the shop app); a real Prometheus loads rules/ and scrapes it every second; every panel
expression and recording rule of tests/e2e/test_dashboards.py must return a finite value within
the deadline, except the few panels that read what a demo on an ordinary machine cannot have
(NOT_IN_THE_DEMO and RULES_NOT_IN_THE_DEMO, each with its reason). Then SIGINT: the servers' ports close, the processes it
started are gone, its directory is removed.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.test_dashboards import DEADLINE, _has_data, _query, substitute
from tests.support.binaries import require
from tests.support.net import free_port
from tests.support.prometheus import Prometheus
from tests.test_rules import RULE_FILES, dashboards, panels, recording_rules

ROOT = Path(__file__).resolve().parent.parent.parent

# Panels whose data needs what a laptop or CI box running the demo does not have.
NOT_IN_THE_DEMO = {
    "Container CPU against limit": "a cgroup CPU quota (the demo runs unlimited)",
    "CPU throttling": "a cgroup CPU quota",
    "Throttled time": "a cgroup CPU quota",
    "Container memory against limit": "a cgroup memory limit",
    "Memory working set / limit": "a cgroup memory limit",
    "Memory events": "cgroup v2 memory.events with a limit",
    "Tasks against limit": "a cgroup pids limit",
    "Requests refused by basic auth": "basic auth (the demo's page is open on loopback)",
    "TLS certificate expires in": "an HTTPS target (the demo probes its own plain-HTTP /-/healthy)",
    "Replication lag": "a replica (the demo runs one server of each kind)",
    "Replication lag (bytes)": "a replica",
}
# Recording rules with the same need: no replica, no lag and no broken link to record.
RULES_NOT_IN_THE_DEMO = {
    "instance_target:apm_replication_lag_seconds:max": "a PostgreSQL replica",
    "instance_target:apm_replication_lag_bytes:max": "a replica",
    "instance_target:apm_replication_link_down:count": "a replica whose link is down",
}


def _expressions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name, d in dashboards().items():
        for p in panels(d):
            if p["title"] in NOT_IN_THE_DEMO:
                continue
            for t in p["targets"]:
                out[f"{name} / {p['title']} / {t['refId']}"] = substitute(t["expr"])
    for rule in recording_rules():
        if rule["record"] in RULES_NOT_IN_THE_DEMO:
            continue
        out[f"rule {rule['record']}"] = "{__name__=" + f'"{rule["record"]}"' + "}"
    return out


def _closed(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_the_demo_fills_every_dashboard_and_stops_cleanly(tmp_path: Path) -> None:
    for binary in ("redis-server", "memcached", "pgbouncer"):
        require(binary, "/usr/sbin")
    port = free_port()
    log = open(tmp_path / "demo.log", "w+b")
    demo = subprocess.Popen([str(ROOT / "scripts" / "demo"), "--port", str(port), "--duration", "600"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
    prom_dir = tmp_path / "prometheus"
    prom_dir.mkdir()
    prom = Prometheus(prom_dir, [f"127.0.0.1:{port}"], rule_files=[str(p) for p in RULE_FILES])
    try:
        deadline = time.monotonic() + 180  # the first run also installs the demo's extras into .venv
        while b"Status page:" not in (tmp_path / "demo.log").read_bytes():
            assert demo.poll() is None, (tmp_path / "demo.log").read_text(errors="replace")
            assert time.monotonic() < deadline, "the demo never printed its URL"
            time.sleep(0.2)
        text = (tmp_path / "demo.log").read_text(errors="replace")
        assert f"Status page: http://127.0.0.1:{port}/" in text
        servers = {name: int(p) for name, p in re.findall(r"^\s+(redis|memcached|postgres|pgbouncer)\s+127\.0\.0\.1:(\d+)$",
                                                             text, re.M)}
        assert set(servers) == {"redis", "memcached", "postgres", "pgbouncer"}, text
        demo_dir = Path(re.search(r"^\s+directory\s+(\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
        assert demo_dir.is_dir()

        prom.start()
        assert prom.wait_for('up{job="apm"} == 1'), "Prometheus never scraped the demo's daemon"
        missing = _expressions()
        until = time.monotonic() + DEADLINE
        while missing and time.monotonic() < until:
            for key, expr in list(missing.items()):
                if _has_data(_query(prom, expr)):
                    del missing[key]
            time.sleep(1)
        assert not missing, "no data (or only NaN) from the demo for:\n" + "\n".join(
            f"  {k}: {e}" for k, e in missing.items())
    finally:
        prom.stop()
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in its terminal sends
        try:
            demo.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
            pytest.fail("the demo did not stop within 60 s of Ctrl-C")
        log.close()
    output = (tmp_path / "demo.log").read_text(errors="replace")
    assert demo.returncode == 0, output
    assert "demo stopped" in output
    for name, p in {**servers, "daemon": port}.items():
        assert _closed(p), f"{name} still listens on {p} after Ctrl-C"
    assert not demo_dir.exists()
