"""Run apm-exporter the way a user does: the console script, a config file, HTTP."""

from __future__ import annotations

import ast
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



# A fresh interpreter runs the daemon as the CLI does (config file argv[2], listening on
# argv[1]) and, from a thread, waits for it, GETs each path in argv[4:] (a 404 is fine),
# prints the loaded modules that are package argv[3] or inside it, and stops the daemon.
_LOADED_AFTER_GETS = """
import os, signal, sys, threading, time, urllib.request
from exporter import cli

def scrape():
    base = "http://" + sys.argv[1]
    deadline = time.monotonic() + 60
    while True:  # until the daemon listens
        try:
            urllib.request.urlopen(base + "/-/healthy", timeout=5).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    for path in sys.argv[4:]:
        try:
            urllib.request.urlopen(base + path, timeout=30).read()
        except OSError:
            pass  # the 404
    package = sys.argv[3]
    print(sorted(m for m in sys.modules if m == package or m.startswith(package + ".")), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=scrape, daemon=True).start()
sys.exit(cli.main(["--config.file", sys.argv[2], "--web.listen-address", sys.argv[1]]))
"""


def loaded_after_gets(config_path: Path, package: str, paths: list[str]) -> list[str]:
    """The modules of `package` a daemon on this config file has loaded once it has answered `paths`."""
    root = Path(__file__).resolve().parent.parent.parent
    done = subprocess.run([sys.executable, "-c", _LOADED_AFTER_GETS, f"127.0.0.1:{free_port()}", str(config_path),
                           package, *paths], capture_output=True, text=True, cwd=root, timeout=120)
    lines = done.stdout.splitlines()
    assert lines, done.stdout + done.stderr
    loaded: list[str] = ast.literal_eval(lines[-1])
    return loaded
