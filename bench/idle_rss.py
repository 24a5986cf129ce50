"""Idle RSS of a daemon from each source tree, side by side: after start and 5 scrapes.

    python3 bench/idle_rss.py [--runs 3] TREE [TREE ...]

Each tree runs as `python -m exporter` with the tree first on sys.path (same interpreter
and venv for all), on config.yaml moved to free ports and on a PostgreSQL-probe-only
config whose target refuses connections; runs alternate between the trees. Whether
modules compile at start is the environment's: PYTHONDONTWRITEBYTECODE=1 and no .pyc
(as scripts/run runs here), or bytecode compiled beforehand (`python -m compileall`
of each tree and the venv's site-packages, as the image's pip install does).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _configs(work: Path) -> dict[str, Path]:
    shipped = yaml.safe_load((ROOT / "config.yaml").read_text())
    shipped["statsd"]["listeners"] = [f"udp://127.0.0.1:{_port(socket.SOCK_DGRAM)}"]
    postgres = {"collectors": {"host": {"enabled": False}, "process": {"enabled": False},
                               "container": {"enabled": False}},
                "statsd": {"listeners": []},
                "probes": {"postgres": [{"name": "db", "dsn": f"postgresql://postgres@127.0.0.1:{_port()}/postgres"}]}}
    out = {}
    for name, config in (("config.yaml", shipped), ("PostgreSQL probe only", postgres)):
        path = work / (name.split()[0].lower() + ".yaml")
        path.write_text(yaml.safe_dump(config))
        out[name] = path
    return out


def rss_after_scrapes(tree: Path, config: Path, scrapes: int = 5) -> float:
    """MiB resident once the daemon from `tree` has answered `scrapes` scrapes."""
    address = f"127.0.0.1:{_port()}"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "--config.file", str(config),
                             "--web.listen-address", address], cwd=tree, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://{address}/-/healthy", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        for _ in range(scrapes):
            urllib.request.urlopen(f"http://{address}/metrics", timeout=30).read()
        status = Path(f"/proc/{proc.pid}/status").read_text()
        kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        return kib / 1024
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        configs = _configs(Path(work))
        got: dict[tuple[str, Path], list[float]] = {}
        for _ in range(args.runs):
            for name, config in configs.items():
                for tree in args.trees:
                    got.setdefault((name, tree), []).append(rss_after_scrapes(tree.resolve(), config))
    print(f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')}")
    for (name, tree), values in got.items():
        print(f"{name:24} {tree}: " + ", ".join(f"{v:.2f}" for v in values) + " MiB")


if __name__ == "__main__":
    main()
