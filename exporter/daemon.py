"""Build everything from a Config, run it, reload it, stop it.

Reload builds the new collectors and StatsD mapping off to the side and swaps
them in only when all of them were built; otherwise the running config stays
and the reload gauges say so. The pushed-series store and the web server
survive reloads.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from exporter import config as config_module
from exporter import families
from exporter.collectors import REGISTRY
from exporter.collectors.self_metrics import SelfMetricsCollector
from exporter.config import Config, ConfigError
from exporter.heap import freeze_startup_heap, release_free_heap
from exporter.model import Family
from exporter.schema import split_address
from exporter.scrape import Job, Scraper, ScraperClosed
from exporter.statsd import StatsD
from exporter.status import assets as status_assets
from exporter.status.service import Status, step_from_env
from exporter.store import Limits, Store
from exporter.web import Options, Server
from exporter.webconfig import WebConfig, WebConfigError

if TYPE_CHECKING:
    from exporter.otlp.config import OtlpConfig
    from exporter.otlp.service import Otlp

log = logging.getLogger(__name__)

# The interpreter's switch interval while the daemon runs (CPython's default is 5 ms). The StatsD
# reader thread gives up the GIL in every recv(), so while a big scrape renders on the worker it
# got one datagram per interval: 200 a second, less than a busy listener receives (issue 19).
SWITCH_INTERVAL = 0.0005
INLINE_COLLECT_SERIES = 1_000  # pushed series copied out on the loop (a few ms at most, histograms)
# How often the heap's free pages are handed back to the OS (release_free_heap): under the soak's
# load the traced Python memory stayed flat (30.6 -> 30.4 MiB, minutes 2 to 6) while glibc's
# free-but-kept heap grew 6.3 -> 8.2 MiB, and a trim gave back 3.2-4.2 MiB of RSS (issue 15).
TRIM_INTERVAL = 60.0


@dataclass(frozen=True)
class Overrides:
    """Command-line flags that take precedence over the file (exporter conventions)."""

    listen_address: str | None = None
    telemetry_path: str | None = None
    web_config_file: str | None = None
    enable_lifecycle: bool = True
    statsd_mapping_config: str | None = None


def apply(config: Config, overrides: Overrides) -> Config:
    """The config with the flags in force; a bad --statsd.mapping-config file raises ValueError."""
    web = config.web.model_copy(update={
        k: v for k, v in (("listen_address", overrides.listen_address),
                          ("telemetry_path", overrides.telemetry_path)) if v is not None})
    if overrides.statsd_mapping_config is not None:
        config = config.model_copy(update={"statsd": config.statsd.with_mapping_config(overrides.statsd_mapping_config)})
    return config.model_copy(update={"web": web})


def iter_jobs(config: Config) -> Iterator[Job]:
    """One job per enabled collector and per probe target; raises if one cannot be built
    (the caller closes those already built)."""
    yield Job(SelfMetricsCollector(), "exporter")
    for name, entry in REGISTRY.items():
        if entry.targets:
            for target in getattr(config.probes, name):
                yield Job(entry.factory(target), name, target.name, target.timeout,
                          target.interval, is_probe=True)
        else:
            section = getattr(config.collectors, name)
            if section.enabled:
                yield Job(entry.factory(section), name, timeout=section.timeout)


class Daemon:
    def __init__(self, config_path: str, config: Config, overrides: Overrides = Overrides(),
                 web_config: WebConfig | None = None) -> None:
        self.config_path = config_path
        self.web_config = web_config
        self.overrides = overrides
        self.config = apply(config, overrides)
        self.namespace = self.config.namespace
        self.ready = False
        self.stats = Store(Limits(max_series=1_000_000, max_series_per_family=1_000_000))
        self.store = Store()  # StatsD sets its limits from the `statsd.defaults` section
        self.scraper = Scraper(iter_jobs(self.config))
        self.statsd = StatsD(self.config.statsd, self.store, self.stats)
        # Built only once the otlp: section is enabled, so the default daemon does not load it.
        self.otlp: Otlp | None = None
        self._web_options = Options()
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._reload_ok = self.stats.gauge(families.CONFIG_LAST_RELOAD_SUCCESSFUL)
        self._reload_time = self.stats.gauge(families.CONFIG_LAST_RELOAD_SUCCESS_TIME)
        self._reload_ok.set(1.0)
        self._reload_time.set(time.time())
        self._scrapes = self.stats.counter(families.SCRAPES)
        self.server: Server | None = None
        self.status = Status(step_from_env())

    async def collect(self) -> list[Family]:
        self._scrapes.inc()
        return await self.families()

    async def families(self) -> list[Family]:
        """What /metrics renders; the status page samples it without counting a scrape."""
        # The pushed series are copied out while the probes wait on their targets, not after: a
        # scrape then takes the longer of the two, not their sum. Off the loop when big: 100,000
        # pushed histograms take a few hundred ms to copy (under the store's own lock), time in
        # which TCP StatsD and /-/healthy would otherwise wait; a small store is copied in
        # microseconds, less than the hand-off to a thread costs.
        copying = (asyncio.ensure_future(asyncio.to_thread(self.store.collect))
                   if len(self.store) > INLINE_COLLECT_SERIES else None)
        meanwhile = self._pushed if copying is None else None
        try:
            out = await self.scraper.collect(meanwhile)
        except ScraperClosed:  # a reload swapped the collectors mid-scrape: the new ones answer
            out = await self.scraper.collect(meanwhile)
        if copying is not None:
            out += await copying
            out += self._counted()
        auth = self.web_config.authenticator if self.web_config else None
        if auth is not None:
            out.append(families.HTTP_AUTH_FAILURES.family(((r,), float(n)) for r, n in auth.failures.items()))
        return out

    def _pushed(self) -> list[Family]:
        """The StatsD/client series and the daemon's own counts, in exposition order."""
        return self.store.collect() + self._counted()

    def _counted(self) -> list[Family]:
        return self.stats.collect() + self.statsd.collect()

    async def reload(self) -> str | None:
        async with self._reload_lock:
            self._rotate_certificates()
            jobs: list[Job] = []
            try:
                config = apply(config_module.load(self.config_path), self.overrides)
                for job in iter_jobs(config):
                    jobs.append(job)
            except ConfigError as err:
                return self._reload_failed(err.problems)
            except Exception as err:  # a collector that cannot be built from a valid file
                await Scraper(jobs).close()
                return self._reload_failed([f"{type(err).__name__}: {err}"])
            try:
                await self.statsd.reload(config.statsd)
            except Exception as err:
                await Scraper(jobs).close()
                return self._reload_failed([f"statsd: {type(err).__name__}: {err}"])
            try:
                await self._apply_otlp(config.otlp)
            except OSError as err:
                await Scraper(jobs).close()
                return self._reload_failed([f"otlp: {err}"])
            old, self.scraper = self.scraper, Scraper(jobs)
            await old.close()
            del old
            freeze_startup_heap()  # the old collectors, frozen at start, can be collected now
            if config.web != self.config.web or config.namespace != self.config.namespace:
                log.warning("web and namespace settings change only on restart")
            self.config = config
            self._reload_ok.set(1.0)
            self._reload_time.set(time.time())
            self.stats.counter(families.CONFIG_RELOADS, "success").inc()
            log.info("configuration reloaded", extra={"file": self.config_path, "collectors": len(jobs)})
            return None

    def _rotate_certificates(self) -> None:
        """Re-read the TLS pair on every reload; a bad new pair keeps the old one serving."""
        if self.web_config is None:
            return
        try:
            self.web_config.reload_certificates()
        except WebConfigError as err:
            log.error("TLS certificate reload failed, keeping the current pair", extra={"err": str(err)})

    def _reload_failed(self, problems: list[str]) -> str:
        for problem in problems:
            log.error("configuration reload failed, keeping the running one", extra={"problem": problem})
        self._reload_ok.set(0.0)
        self.stats.counter(families.CONFIG_RELOADS, "failure").inc()
        return "; ".join(problems)

    async def _apply_otlp(self, config: OtlpConfig) -> None:
        """Reload the OTLP receivers, or start them when the section is first enabled."""
        if self.otlp is not None:
            await self.otlp.reload(config)
        elif config.enabled:
            from exporter.otlp.service import Otlp

            # OTLP writes the same store as StatsD, under the lock StatsD ingest writes it under.
            otlp = Otlp(config, self.store, self.stats, self.statsd.ingest.lock, self.statsd.ingest.counted)
            await otlp.start(self, self._web_options)
            self.otlp = otlp

    def stop(self) -> None:
        self._stop.set()

    async def _trim_loop(self) -> None:
        while True:
            await asyncio.sleep(TRIM_INTERVAL)
            # In a thread: malloc_trim walks every arena (a few ms), and ctypes lets go of the GIL.
            await asyncio.to_thread(release_free_heap)

    async def run(self, web_options: Options) -> None:
        sys.setswitchinterval(SWITCH_INTERVAL)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        web_options.routes = {**self.status.routes(web_options.telemetry_path, web_options.routes),
                              **web_options.routes}
        web_options.web_config.headers.setdefault("Content-Security-Policy", status_assets.CSP)
        self.server = Server(self, web_options)
        host, port = split_address(self.config.web.listen_address)
        sampler = asyncio.create_task(self.status.run(self.families))
        trimmer: asyncio.Task[None] | None = None
        try:
            await self.statsd.start()
            await self.server.start(host, port)
            self._web_options = web_options
            await self._apply_otlp(self.config.otlp)
            self.ready = True
            freeze_startup_heap()
            release_free_heap()
            trimmer = asyncio.create_task(self._trim_loop(), name="heap trim")
            log.info("listening", extra={"address": self.config.web.listen_address,
                                         "path": web_options.telemetry_path})
            await self._stop.wait()
        finally:
            self.ready = False
            log.info("stopping")
            sampler.cancel()
            if trimmer is not None:
                trimmer.cancel()
            await self.server.stop()
            if self.otlp is not None:
                await self.otlp.stop()
            await self.statsd.stop()
            await self.scraper.close()
            if self.web_config is not None:
                self.web_config.close()
