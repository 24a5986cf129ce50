"""Fixtures shared by the whole suite: a daemon factory and promtool."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, settings

from tests.support.binaries import require
from tests.support.daemon import Daemon

# Property tests check values, never timings: Hypothesis's default 200 ms deadline per example
# (and its too_slow health check) failed test_native.py under load with "Test took 385.99ms,
# which exceeds the deadline", an example that takes 0.04 ms on a quiet machine.
settings.register_profile("apm", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("apm")

# Real servers (Redis, memcached, PostgreSQL, PgBouncer) as fixtures for any test.
pytest_plugins = ["tests.support.servers"]

MINIMAL = {"statsd": {"listeners": []}}


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start daemons on free ports; each is stopped at the end of the test."""
    started: list[Daemon] = []

    def start(config: dict[str, Any] | str | None = None, *flags: str, wait: bool = True,
              env: dict[str, str] | None = None) -> Daemon:
        workdir = tmp_path / f"daemon{len(started)}"
        workdir.mkdir()
        d = Daemon(workdir, MINIMAL if config is None else config, *flags, env=env)
        started.append(d)
        return d.start(wait=wait)

    yield start
    for d in started:
        d.stop()


@pytest.fixture(scope="session")
def promtool() -> Callable[[str], str]:
    """Run `promtool check metrics` on an exposition; returns its findings ('' when clean)."""
    binary = require("promtool")

    def check(text: str) -> str:
        result = subprocess.run([binary, "check", "metrics"], input=text.encode(), capture_output=True)
        return (result.stdout + result.stderr).decode().strip()

    return check
