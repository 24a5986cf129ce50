"""Prometheus as a fleet runs it: agents that scrape a hashmod shard and remote-write to a centre.

The configurations here are the ones docs/deploy.md ("A fleet") gives users; the fleet e2e
test (tests/e2e/test_fleet.py) runs them with short intervals so it finishes in seconds.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.net import wait_for_http
from tests.support.prometheus import Prometheus

# How fast the test's fleet moves: every second, and remote write flushes within 100 ms.
INTERVAL = "1s"
QUEUE_CONFIG = {"batch_send_deadline": "100ms", "min_backoff": "50ms", "max_backoff": "1s"}


def hashmod(value: str, modulus: int) -> int:
    """Prometheus's `hashmod` relabel action: the low 8 bytes of the MD5, big-endian, mod modulus."""
    return int.from_bytes(hashlib.md5(value.encode()).digest()[8:], "big") % modulus


def agent_config(targets: list[str], shard: int, shards: int, remote_write_url: str,
                 interval: str = INTERVAL) -> dict[str, Any]:
    """An agent scraping its hashmod shard of `targets` and remote-writing everything."""
    return {
        "global": {"scrape_interval": interval},
        "scrape_configs": [{
            "job_name": "apm",
            "static_configs": [{"targets": targets}],
            "relabel_configs": [
                {"source_labels": ["__address__"], "modulus": shards, "target_label": "__tmp_hash",
                 "action": "hashmod"},
                {"source_labels": ["__tmp_hash"], "regex": str(shard), "action": "keep"},
            ],
        }],
        "remote_write": [{"url": remote_write_url, "queue_config": QUEUE_CONFIG}],
    }


class ConfiguredPrometheus(Prometheus):
    """A Prometheus with a configuration of our own and extra flags (agent mode, receiver)."""

    def __init__(self, workdir: Path, config: dict[str, Any], *flags: str, agent: bool = False) -> None:
        super().__init__(workdir, targets=[])
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.agent = agent
        self.flags = flags

    def start(self) -> ConfiguredPrometheus:
        storage = "--storage.agent.path" if self.agent else "--storage.tsdb.path"
        mode = ["--enable-feature=agent"] if self.agent else []
        self._log = open(self.workdir / "prometheus.log", "ab")
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={self.config_path}", f"{storage}={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", *mode, *self.flags],
            stdout=self._log, stderr=subprocess.STDOUT)
        wait_for_http(self.url + "/-/ready", timeout=60)
        return self

    def log(self) -> str:
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace") if path.exists() else ""


def agent(workdir: Path, targets: list[str], shard: int, shards: int, centre: Prometheus) -> ConfiguredPrometheus:
    workdir.mkdir(parents=True, exist_ok=True)
    config = agent_config(targets, shard, shards, centre.url + "/api/v1/write")
    return ConfiguredPrometheus(workdir, config, agent=True)


def centre(workdir: Path, rule_files: list[str], interval: str = INTERVAL) -> ConfiguredPrometheus:
    """The central server: no scrapes of its own, receives remote write, evaluates rules/."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = {"global": {"evaluation_interval": interval}, "rule_files": rule_files}
    return ConfiguredPrometheus(workdir, config, "--web.enable-remote-write-receiver")
