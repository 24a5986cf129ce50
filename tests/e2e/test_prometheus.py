"""A real Prometheus server scrapes the daemon and answers PromQL about it."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from tests.support.daemon import Daemon
from tests.support.prometheus import Prometheus


def test_prometheus_scrapes_host_cpu_and_memory(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    d = daemon_factory({"statsd": {"listeners": []}, "collectors": {"host": {"enabled": True}}})
    prom = Prometheus(tmp_path, [f"127.0.0.1:{d.port}"]).start()
    try:
        up = prom.wait_for('up{job="apm"} == 1')
        assert up and up[0]["value"][1] == "1"
        cpu = prom.wait_for('sum by (mode) (apm_host_cpu_seconds_total{job="apm"})')
        assert {s["metric"]["mode"] for s in cpu} >= {"user", "system", "idle"}
        memory = prom.wait_for('apm_host_memory_available_bytes{job="apm"}')
        assert float(memory[0]["value"][1]) > 0
        # The scrape itself is healthy from Prometheus's side.
        health = prom.api("targets")["activeTargets"][0]
        assert health["health"] == "up", health
    finally:
        prom.stop()
