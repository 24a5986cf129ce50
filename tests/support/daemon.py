"""Run apm-exporter the way a user does: the console script, a config file, HTTP."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.net import free_port, wait_for_http


def executable() -> list[str]:
    script = shutil.which("apm-exporter")
    return [script] if script else [sys.executable, "-m", "exporter"]


class Daemon:
    """A daemon subprocess on a free port; stop() is always safe to call."""

    def __init__(self, workdir: Path, config: dict[str, Any] | str, *flags: str,
                 env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.config_path = workdir / "config.yaml"
        self.write_config(config)
        self.log_path = workdir / "daemon.log"
        self.flags = flags
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self, config: dict[str, Any] | str) -> None:
        text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
        self.config_path.write_text(text)

    def start(self, wait: bool = True) -> Daemon:
        cmd = [*executable(), "--config.file", str(self.config_path),
               "--web.listen-address", f"127.0.0.1:{self.port}", *self.flags]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
                                     cwd=self.workdir)
        if wait:
            try:
                wait_for_http(self.url + "/-/ready")
            except TimeoutError:
                self.stop()
                raise RuntimeError(f"daemon did not become ready; log:\n{self.log()}") from None
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.url + path, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def scrape_text(self) -> str:
        status, _, body = self.get("/metrics")
        assert status == 200, body
        return body.decode()

    def scrape(self) -> dict[str, Any]:
        """Families by name, parsed by prometheus_client's reference parser."""
        return {f.name: f for f in text_string_to_metric_families(self.scrape_text())}

    def value(self, name: str, **labels: str) -> float | None:
        """One sample's value (name as exposed, e.g. with _total or _bucket), or None."""
        for family in text_string_to_metric_families(self.scrape_text()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return None

    def reload(self) -> tuple[int, bytes]:
        status, _, body = self.get("/-/reload", method="POST")
        return status, body

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> float:
        """Stop the daemon; returns how long it took to exit."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        start = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        return time.monotonic() - start

