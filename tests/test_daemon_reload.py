"""Reload builds off to the side: a collector that cannot be built leaves nothing open."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from exporter import config, daemon
from exporter.collectors import Entry
from exporter.schema import CollectorConfig


class Recorder:
    closed: list[str] = []

    def __init__(self, section: CollectorConfig) -> None:
        self.name = "built"

    async def collect(self) -> list:
        return []

    async def close(self) -> None:
        Recorder.closed.append(self.name)


def broken(section: CollectorConfig) -> Recorder:
    raise RuntimeError("driver missing")


def test_a_collector_that_cannot_be_built_fails_the_reload_and_closes_the_others(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("statsd: {listeners: []}\n")

    async def main() -> tuple[str | None, int]:
        d = daemon.Daemon(str(path), config.load(path))
        before = len(d.scraper.jobs)
        registry = {"host": Entry(Recorder, CollectorConfig), "process": Entry(broken, CollectorConfig)}
        monkeypatch.setattr(daemon, "REGISTRY", registry)
        error = await d.reload()
        assert len(d.scraper.jobs) == before  # the running collectors stay
        await d.scraper.close()
        return error, before

    error, _ = asyncio.run(main())
    assert error is not None and "driver missing" in error
    assert Recorder.closed == ["built"]
