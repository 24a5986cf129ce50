"""The daemon as a user runs it: console script, config file, HTTP, signals."""

from __future__ import annotations

import concurrent.futures
import gzip
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Callable

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from tests.support.daemon import Daemon, executable
from tests.support.net import wait_for_http

Factory = Callable[..., Daemon]
HOST = {"statsd": {"listeners": []}, "collectors": {"host": {"enabled": True}}}


def test_scrape_is_valid_and_shows_host_metrics(daemon_factory: Factory, promtool: Callable[[str], str]) -> None:
    d = daemon_factory(HOST)
    status, headers, body = d.get("/metrics")
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    assert promtool(text) == ""
    families = d.scrape()
    for name in ("apm_host_cpu_seconds", "apm_host_memory_available_bytes", "apm_host_load1",
                 "apm_exporter_build_info", "apm_exporter_collector_success",
                 "apm_exporter_process_resident_memory_bytes"):
        assert name in families, name
    success = {s.labels["collector"]: s.value for s in families["apm_exporter_collector_success"].samples}
    assert success["host"] == 1.0 and success["exporter"] == 1.0
    # HELP on every family.
    help_lines = {line.split()[2] for line in text.splitlines() if line.startswith("# HELP")}
    type_lines = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert help_lines == type_lines


def test_openmetrics_and_gzip_negotiation(daemon_factory: Factory) -> None:
    d = daemon_factory(HOST)
    accept = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
              "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    status, headers, body = d.get("/metrics", {"Accept": accept, "Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(body).decode()
    assert text.endswith("# EOF\n")
    names = {f.name for f in parse_openmetrics(text)}
    assert "apm_host_cpu_seconds" in names
    # No gzip unless asked.
    _, plain_headers, _ = d.get("/metrics")
    assert "Content-Encoding" not in plain_headers


def test_lifecycle_endpoints_and_landing_page(daemon_factory: Factory) -> None:
    d = daemon_factory()
    assert d.get("/-/healthy")[0] == 200
    assert d.get("/-/ready")[0] == 200
    status, _, body = d.get("/")
    assert status == 200
    for link in (b'href="/metrics"', b'href="/-/healthy"', b'href="/-/ready"'):
        assert link in body
    assert d.get("/nope")[0] == 404
    assert d.get("/-/reload")[0] == 405  # reload needs POST


def test_reload_good_and_bad_files(daemon_factory: Factory) -> None:
    d = daemon_factory(HOST)
    assert d.value("apm_exporter_config_last_reload_successful") == 1.0
    assert "apm_host_cpu_seconds_total" in d.scrape_text()

    # A good file: host collector switched off takes effect.
    d.write_config({"statsd": {"listeners": []}, "collectors": {"host": {"enabled": False}}})
    status, _ = d.reload()
    assert status == 200
    assert "apm_host_cpu_seconds_total" not in d.scrape_text()
    assert d.value("apm_exporter_config_reloads_total", outcome="success") == 1.0

    # A bad file: the running config stays, the gauge drops to 0, the error is logged with its line.
    before = d.value("apm_exporter_config_last_reload_success_timestamp_seconds")
    d.write_config("collectors:\n  host:\n    enabled: maybe\n")
    status, body = d.reload()
    assert status == 500 and b"collectors.host.enabled" in body
    assert d.value("apm_exporter_config_last_reload_successful") == 0.0
    assert d.value("apm_exporter_config_last_reload_success_timestamp_seconds") == before
    assert d.value("apm_exporter_config_reloads_total", outcome="failure") == 1.0
    assert "apm_host_cpu_seconds_total" not in d.scrape_text()
    assert "config.yaml:3: collectors.host.enabled" in d.log()

    # SIGHUP with a good file again: host metrics come back.
    d.write_config(HOST)
    d.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while d.value("apm_exporter_config_last_reload_successful") != 1.0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert d.value("apm_exporter_config_last_reload_successful") == 1.0
    assert "apm_host_cpu_seconds_total" in d.scrape_text()


def test_a_reload_during_a_scrape_gives_that_scrape_the_new_collectors(daemon_factory: Factory) -> None:
    """A probe target that accepts and never answers holds a scrape open; a reload that drops it
    must not fail that scrape (the old scraper's runs are cancelled as it closes)."""
    hung = socket.create_server(("127.0.0.1", 0))
    port = hung.getsockname()[1]
    hung_config = {**HOST, "probes": {"redis": [{"name": "hung", "url": f"redis://127.0.0.1:{port}/0",
                                                   "timeout": "60s"}]}}
    d = daemon_factory(hung_config)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        hung.settimeout(30)
        scrape = pool.submit(d.get, "/metrics")
        conn, _ = hung.accept()  # the probe is in flight, and the scrape waits on it
        d.write_config(HOST)
        assert d.reload()[0] == 200
        status, _, body = scrape.result(timeout=30)
    conn.close()
    hung.close()
    assert status == 200, body
    text = body.decode()
    assert "apm_host_cpu_seconds_total" in text
    assert 'target="hung"' not in text


def test_sigterm_and_sigint_stop_cleanly(daemon_factory: Factory) -> None:
    """Exit status 0 and the shutdown logged: a daemon that hung on stop would be killed by
    Daemon.stop's timeout (status -9). How long a stop takes is measured in bench/lifecycle.py."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        d = daemon_factory(HOST)
        d.scrape_text()
        d.stop(sig)
        assert d.proc is not None and d.proc.returncode == 0, d.log()
        assert "stopping" in d.log()


def test_python_dash_m_and_flags(daemon_factory: Factory, tmp_path: Any) -> None:
    d = Daemon(tmp_path, HOST, "--web.telemetry-path", "/custom", "--log.format", "json",
               "--log.level", "debug")
    d.proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--config.file", str(d.config_path),
         "--web.listen-address", f"127.0.0.1:{d.port}", *d.flags],
        stdout=open(d.log_path, "wb"), stderr=subprocess.STDOUT, cwd=tmp_path)
    d._log = open(d.log_path, "ab")
    try:
        wait_for_http(d.url + "/-/ready")
        assert d.get("/custom")[0] == 200
        assert d.get("/metrics")[0] == 404
    finally:
        d.stop()
    first = d.log().splitlines()[0]
    assert first.startswith("{") and '"level":' in first


def test_bad_config_exits_non_zero_with_every_problem(tmp_path: Any) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("web:\n  listen_address: nowhere\ncollectors:\n  host:\n    enabled: 3x\n  hots: {}\n")
    result = subprocess.run([*executable(), "--config.file", str(bad)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "bad.yaml:2: web.listen_address" in result.stderr
    assert "bad.yaml:5: collectors.host.enabled" in result.stderr
    assert "bad.yaml:6: collectors.hots" in result.stderr


def test_profiling_endpoints_only_behind_their_flag(daemon_factory: Factory) -> None:
    plain = daemon_factory()
    assert plain.get("/-/profile/cpu?seconds=1")[0] == 404
    profiled = daemon_factory(None, "--web.enable-profiling")
    status, _, body = profiled.get("/-/profile/cpu?seconds=1")
    assert status == 200 and body
    status, _, body = profiled.get("/-/profile/memory?top=5")
    assert status == 200 and body
    assert profiled.get("/-/profile/cpu?seconds=abc")[0] == 400
