"""Time to ready and time to stop, side by side with node_exporter.

    python bench/lifecycle.py [--rounds 10]

What used to be a timed unit test ("stops within two seconds") measured where
timings belong. Each round starts both exporters on free ports (the repository's
config.yaml for ours), waits until /metrics answers, scrapes once, sends SIGTERM
and waits for the exit. Reports medians and the ratio to the anchor.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scrape import ROOT, free_port, scrape, wait  # noqa: E402  (the sibling benchmark's helpers)


def one_round(cmd: list[str], url: str, ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait(url)
    ready = time.perf_counter() - began
    scrape(url)
    began = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(30)
    stopped = time.perf_counter() - began
    if code not in ok:
        raise SystemExit(f"{cmd[0]} exited with {code} on SIGTERM")
    return ready, stopped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    node_bin = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if node_bin is None:
        raise SystemExit("install the anchor: apt-get install prometheus-node-exporter")
    ours_bin = shutil.which("apm-exporter")
    ours_cmd = [ours_bin] if ours_bin else [sys.executable, "-m", "exporter"]
    results: dict[str, list[tuple[float, float]]] = {"apm-exporter": [], "node_exporter": []}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
        config_path = Path(tmp) / "config.yaml"
        for _ in range(args.rounds):  # alternate, so the machine's noise falls on both alike
            cfg["statsd"]["listeners"] = [f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}"]
            config_path.write_text(yaml.safe_dump(cfg))
            port = free_port()
            results["apm-exporter"].append(one_round(
                [*ours_cmd, "--config.file", str(config_path), "--web.listen-address", f"127.0.0.1:{port}"],
                f"http://127.0.0.1:{port}/metrics"))
            port = free_port()
            results["node_exporter"].append(one_round(
                [node_bin, f"--web.listen-address=127.0.0.1:{port}"], f"http://127.0.0.1:{port}/metrics",
                ok=(0, -signal.SIGTERM)))  # node_exporter leaves SIGTERM to its default action
    print(f"# python bench/lifecycle.py --rounds {args.rounds}")
    print(f"{'exporter':<14} {'ready ms (median)':>17} {'stop ms (median)':>16}")
    medians = {}
    for name, rows in results.items():
        medians[name] = (statistics.median(r for r, _ in rows), statistics.median(s for _, s in rows))
        print(f"{name:<14} {1000 * medians[name][0]:>17.0f} {1000 * medians[name][1]:>16.0f}")
    ours, node = medians["apm-exporter"], medians["node_exporter"]
    print(f"ratio apm-exporter / node_exporter: ready {ours[0] / node[0]:.2f}, stop {ours[1] / node[1]:.2f}")


if __name__ == "__main__":
    main()
