"""The protobuf exposition and native histograms end to end: the daemon as a user starts it,
StatsD lines over UDP, real Prometheus 2.42 servers with and without native histograms."""

from __future__ import annotations

import gzip
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exporter.exposition import Format
from tests.support.daemon import Daemon
from tests.support.metrics_pb import decode, proto_samples, text_samples
from tests.support.net import free_port
from tests.support.prometheus import Prometheus
from tests.test_protobuf import PROMETHEUS_CLASSIC, PROMETHEUS_NATIVE


def _send(port: int, lines: list[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for start in range(0, len(lines), 20):
            sock.sendto("\n".join(lines[start:start + 20]).encode(), ("127.0.0.1", port))


def _wait_lines(d: Daemon, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (d.value("apm_exporter_statsd_samples_total") or 0) < count:
        assert time.monotonic() < deadline, "the daemon did not count the lines sent"
        time.sleep(0.1)


def _statsd_daemon(daemon_factory: Callable[..., Daemon], extra: dict[str, Any] | None = None) -> tuple[Daemon, int]:
    port = free_port(socket.SOCK_DGRAM)
    return daemon_factory({"statsd": {"listeners": [f"udp://127.0.0.1:{port}"], **(extra or {})}}), port


def _identities(samples: set[Any]) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    return {(name, labels) for name, labels, _ in samples}


def test_a_scrape_asking_as_prometheus_does_gets_protobuf_with_every_series(
    daemon_factory: Callable[..., Daemon],
) -> None:
    d, port = _statsd_daemon(daemon_factory)
    _send(port, [f"checkout.requests:{i}|c" for i in range(1, 6)] + [f"checkout.latency:{i * 7}|ms" for i in range(50)])
    _wait_lines(d, 55)
    status, headers, body = d.get("/metrics", {"Accept": PROMETHEUS_NATIVE, "Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Type"] == Format.PROTOBUF.value
    assert headers.get("Content-Encoding") == "gzip"
    decoded = proto_samples(decode(gzip.decompress(body)))
    text = text_samples(d.scrape_text().encode())
    # Self-metrics move between two scrapes; which series exist does not, nor do the StatsD ones.
    assert _identities(decoded) == _identities(text)
    stable = {s for s in text if s[0].startswith(("checkout", "apm_checkout"))}
    assert stable and stable <= decoded
    status, headers, _ = d.get("/metrics", {"Accept": PROMETHEUS_CLASSIC})
    assert headers["Content-Type"] == Format.OPENMETRICS.value


def test_prometheus_with_and_without_native_histograms_scrapes_the_same_daemon(
    daemon_factory: Callable[..., Daemon], tmp_path: Path,
) -> None:
    d, port = _statsd_daemon(daemon_factory)
    _send(port, ["orders.created:3|c"])
    _wait_lines(d, 1)
    (tmp_path / "native").mkdir()
    (tmp_path / "classic").mkdir()
    native = Prometheus(tmp_path / "native", [f"127.0.0.1:{d.port}"], features=("native-histograms",)).start()
    classic = Prometheus(tmp_path / "classic", [f"127.0.0.1:{d.port}"]).start()
    try:
        for prom in (native, classic):
            found = prom.wait_for('orders_created_total{job="apm"}') or prom.wait_for('{__name__=~".*orders_created.*"}')
            assert found and float(found[0]["value"][1]) == 3, found
            assert prom.api("targets")["activeTargets"][0]["health"] == "up"
    finally:
        native.stop()
        classic.stop()
