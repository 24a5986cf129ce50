"""The status service the daemon runs: sample every step, serve `/` and `/api/v1/status`.

Every `step` seconds it takes the same families a scrape of /metrics renders
(the daemon's collect function, passed in) and appends one history row. A
target's last error is not a metric: it comes from the one log record the
scraper writes when a target fails (`collector failed`, with its redacted
error), caught by a logging handler, so nothing reads the scraper's insides.
The page and the JSON are built at most once per sample and served from that
cache until the next one; sampling and building run off the event loop, one at
a time under a lock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from exporter.model import Family
from exporter.status.history import History
from exporter.status.model import Model, Sampler

log = logging.getLogger(__name__)

STATUS_PATH = "/api/v1/status"
# The step can be shortened for demos and tests (the default matches a 15 s scrape interval).
STEP_ENV = "APM_STATUS_STEP_SECONDS"
MAX_ERRORS = 10_000  # targets whose last error is remembered


def step_from_env(default: float = 15.0) -> float:
    text = os.environ.get(STEP_ENV, "")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.1 <= value <= 3600:
        log.error("ignoring an invalid status step", extra={"variable": STEP_ENV, "value": text})
        return default
    return value


class ErrorLog(logging.Handler):
    """Keeps each target's last failure text from the scraper's `collector failed` records."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors: dict[tuple[str, str], tuple[float, str]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        label = getattr(record, "collector", None)
        err = getattr(record, "err", None)
        if not isinstance(label, str) or not isinstance(err, str) or record.getMessage() != "collector failed":
            return
        name, _, target = label.partition("/")
        if (name, target) not in self.errors and len(self.errors) >= MAX_ERRORS:
            return
        self.errors[(name, target)] = (record.created, err)


class Status:
    def __init__(self, step: float = 15.0, points: int = 60) -> None:
        self.history = History(step, points)
        self.sampler = Sampler(self.history)
        self.model = Model(self.history, self.sampler)
        self.errors = ErrorLog()
        self.started_at = time.time()
        self.links: Sequence[tuple[str, str]] = ()
        # Only the bodies are kept, not the model they came from (its sparklines are most of it).
        self._html: tuple[int, bytes] | None = None
        self._json: tuple[int, bytes] | None = None
        self._samples = 0
        # Sampling and page building run in threads (off the event loop): one at a time.
        self._lock = threading.Lock()

    def observe(self, families: Iterable[Family], at: float | None = None) -> None:
        with self._lock:
            self.sampler.observe(families, at)
            self._samples += 1

    async def run(self, collect: Callable[[], Awaitable[Iterable[Family]]]) -> None:
        """Sample until cancelled; a failed sample is logged and skipped, never fatal."""
        scraper_log = logging.getLogger("exporter.scrape")
        scraper_log.addHandler(self.errors)
        try:
            while True:
                started = time.monotonic()
                try:
                    families = await collect()
                    await asyncio.to_thread(self.observe, families)  # ~30 ms at 1,000 operations
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is None or task.cancelling():
                        raise  # the daemon is stopping
                    # A reload closed the scraper this sample was reading: skip it, go on.
                    log.info("status sample skipped: the scraper was replaced")
                except Exception as err:  # noqa: BLE001  (the page must not take the daemon down)
                    log.warning("status sample failed", extra={"err": f"{type(err).__name__}: {err}"})
                await asyncio.sleep(max(0.0, self.history.step - (time.monotonic() - started)))
        finally:
            scraper_log.removeHandler(self.errors)

    def snapshot(self, spark_rows: int | None = None) -> dict[str, Any]:
        return self.model.snapshot(self.errors.errors, self.started_at, spark_rows)

    def html(self) -> bytes:
        """The page as of the last sample (rendered once per sample, whoever asks how often)."""
        with self._lock:
            if self._html is None or self._html[0] != self._samples:
                # The renderer loads when the page is first asked for (idle RSS).
                from exporter.status import page

                self._html = (self._samples, page.render(self.snapshot(page.MAX_ROWS), self.links, live=True))
            return self._html[1]

    def json(self) -> bytes:
        with self._lock:
            if self._json is None or self._json[0] != self._samples:
                body = json.dumps(self.snapshot(), separators=(",", ":"), allow_nan=False).encode()
                self._json = (self._samples, body)
            return self._json[1]

    def routes(self, telemetry_path: str, extra: Iterable[str] = ()
               ) -> dict[str, Callable[[str], Awaitable[tuple[str, bytes]]]]:
        """Handlers for web.Options.routes; the page links the telemetry path and the other routes."""
        self.links = [(telemetry_path, "Metrics"), ("/-/healthy", "Health"), ("/-/ready", "Readiness"),
                      (STATUS_PATH, "Status JSON"), *((p, p) for p in sorted(extra))]

        # Off the event loop, as /metrics renders are: building the JSON of 1,000 operations takes
        # about 100 ms, in which /-/healthy and StatsD over TCP would otherwise wait.
        async def index(query: str) -> tuple[str, bytes]:
            return "text/html; charset=utf-8", await asyncio.to_thread(self.html)

        async def api(query: str) -> tuple[str, bytes]:
            return "application/json", await asyncio.to_thread(self.json)

        return {"/": index, STATUS_PATH: api}
