"""The `StatsD` service the daemon runs: listeners, the ingest path and TTL expiry for one `statsd:` section."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from exporter import families
from exporter.model import Family
from exporter.statsd.config import StatsdConfig
from exporter.statsd.ingest import Ingest
from exporter.statsd.kernel import read_drops
from exporter.statsd.listener import DatagramListener, TcpListener, parse_listen
from exporter.statsd.mapper import Mapper
from exporter.statsd.stats import StatsdStats
from exporter.statsd.workers import Merger, WorkerListener
from exporter.store import Limits, Store

log = logging.getLogger(__name__)

# How often stale series are looked for when some rule (or the default) sets a TTL.
EXPIRY_INTERVAL = 1.0
Listener = DatagramListener | TcpListener | WorkerListener


def _options(c: StatsdConfig) -> tuple[object, ...]:
    """Socket settings other than the addresses: a change rebinds every listener."""
    return (c.read_buffer, c.tcp_idle_timeout, c.max_line_length, c.tcp_max_connections, c.udp_workers)


class StatsD:
    """Owns the listeners, the ingest path and the TTL expiry task for one `statsd:` section."""

    def __init__(self, config: StatsdConfig, store: Store, stats: Store) -> None:
        self.config = config
        self.store = store
        self.stats = StatsdStats(stats)
        store.limits = Limits(config.defaults.max_series, config.defaults.max_series_per_family)
        self.ingest = Ingest(Mapper.from_config(config), store, self.stats)
        self._listeners: list[Listener] = []
        self._merger = Merger(self.ingest)
        self._expiry: asyncio.Task[None] | None = None

    @property
    def ports(self) -> dict[str, int]:
        """Bound port per listener address (useful with port 0)."""
        return {lst.address: lst.port for lst in self._listeners}

    def collect(self) -> list[Family]:
        """What only the kernel knows: datagrams dropped before a UDP listener read them."""
        out: dict[str, float] = {}
        shared: dict[str, tuple[str, int]] = {}  # the workers' sockets: only /proc/net/udp sees them
        for lst in self._listeners:
            local = None if isinstance(lst, TcpListener) else lst.local
            if local is None:
                continue  # TCP and unixgram: no such counter
            own = lst.kernel_drops() if isinstance(lst, DatagramListener) else None
            if own is not None:
                out[lst.address] = float(own)
            else:
                shared[lst.address] = local
        if shared:
            drops = read_drops(shared.values())
            out.update((address, float(drops[local])) for address, local in shared.items() if local in drops)
        return [families.STATSD_KERNEL_DROPS.family(((address,), n) for address, n in out.items())]

    async def start(self) -> None:
        """Bind every listener (OSError naming the address if one cannot be bound)."""
        if self.config.enabled:
            self._listeners = await self._start_all(self.config.listeners, self.config)
            log.info("statsd: listening on %s", ", ".join(self.config.listeners))
        self._expiry = asyncio.create_task(self._expire_loop(), name="statsd expiry")

    async def reload(self, config: StatsdConfig) -> None:
        """New rules take effect at once (routing cache cleared); the store and its series stay.
        Only listeners whose address (or socket options) changed are rebound. If a new address
        cannot be bound, OSError is raised and the old listeners and rules stay in force."""
        old = self.config
        if _options(old) != _options(config) or not old.enabled or not config.enabled:
            for listener in self._listeners:
                await listener.stop()
            self._listeners = []
            try:
                self._listeners = await self._start_all(config.listeners if config.enabled else [], config)
            except OSError:
                if old.enabled:  # put the old ones back before reporting
                    self._listeners = await self._start_all(old.listeners, old)
                raise
        elif old.listeners != config.listeners:
            current = {listener.address: listener for listener in self._listeners}
            added = await self._start_all([a for a in config.listeners if a not in current], config)
            for address, listener in current.items():
                if address not in config.listeners:
                    await listener.stop()
            fresh = {listener.address: listener for listener in added}
            self._listeners = [current.get(a) or fresh[a] for a in config.listeners]
        self.store.limits = Limits(config.defaults.max_series, config.defaults.max_series_per_family)
        self.ingest.set_mapper(Mapper.from_config(config))
        for listener in self._listeners:
            if isinstance(listener, WorkerListener):
                listener.reload(config)
        self.config = config
        if old.listeners != config.listeners or old.enabled != config.enabled:
            log.info("statsd: listeners now %s", ", ".join(config.listeners) if config.enabled else "none")

    async def _start_all(self, addresses: list[str], config: StatsdConfig) -> list[Listener]:
        """Start these listeners, or none of them (OSError naming the address that failed)."""
        started: list[Listener] = []
        try:
            for address in addresses:
                listener = self._listener(address, config)
                await listener.start()
                started.append(listener)
        except BaseException:
            for listener in started:
                await listener.stop()
            raise
        return started

    async def stop(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
            self._expiry = None
        for listener in self._listeners:
            await listener.stop()
        self._listeners = []

    def _listener(self, address: str, config: StatsdConfig) -> Listener:
        scheme = parse_listen(address).scheme
        if scheme == "udp" and config.udp_workers > 1:
            return WorkerListener(address, config, config.udp_workers, self._merger)
        sink = self.ingest.sink(address)
        counters = self.stats.listener(address)
        if scheme == "tcp":
            return TcpListener(address, sink, counters, self.stats.tcp_errors(), config.tcp_idle_timeout,
                               config.max_line_length, config.tcp_max_connections)
        return DatagramListener(address, sink, counters, config.read_buffer)

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(EXPIRY_INTERVAL)
            try:
                # Off the event loop: with many series the scan takes a while.
                await asyncio.to_thread(self.ingest.expire)
            except Exception:
                log.exception("statsd: series expiry failed")
