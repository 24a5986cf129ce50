"""The `Otlp` service the daemon runs: the receivers of one `otlp:` section, started and reloaded.

Protobuf and grpcio are imported here only when the section is enabled, so a daemon
without OTLP neither loads them nor needs the `otlp` extra. The translator (and its
streams' last points) lives as long as the daemon: a reload changes settings and
rebinds listeners without counting any cumulative total again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from typing import Any

from exporter.otlp.config import OtlpConfig
from exporter.schema import split_address
from exporter.store import Store
from exporter.web import App, Options, Server

log = logging.getLogger(__name__)

EXTRA_HINT = "the OTLP receivers need the otlp extra: pip install 'apm-exporter[otlp]'"
EXPIRY_INTERVAL = 1.0  # as the StatsD series' expiry, which removes the translated series


class MissingExtra(OSError):
    """protobuf or grpcio is not installed; an OSError so that start-up reports it like a
    listener that cannot bind (and exits 1) and a reload keeps the running receivers."""


class Otlp:
    def __init__(self, config: OtlpConfig, store: Store, stats: Store, lock: threading.Lock,
                 counted: Any = lambda: None) -> None:
        self.config = config
        self._store, self._stats, self._lock, self._counted = store, stats, lock, counted
        self._receiver: Any = None
        self._http: Server | None = None
        self._grpc: Any = None
        self._app: App | None = None
        self._web: Options | None = None
        self._expiry: asyncio.Task[None] | None = None

    @property
    def ports(self) -> dict[str, int]:
        """Bound port per transport (useful with port 0)."""
        out = {}
        if self._http is not None:
            out["http"] = self._http.ports[0]
        if self._grpc is not None:
            out["grpc"] = self._grpc.port
        return out

    async def start(self, app: App, web: Options) -> None:
        """Bind the enabled receivers; `web` gives TLS, basic auth and headers for OTLP/HTTP."""
        self._app, self._web = app, web
        await self._start(self.config)
        self._expiry = asyncio.create_task(self._expire_loop(), name="otlp expiry")

    async def reload(self, config: OtlpConfig) -> None:
        """New settings at once; listeners are rebound only if their part of the section changed.
        If a new address cannot be bound, OSError is raised and the old listeners stay."""
        old = self.config
        if self._receiver is not None:
            self._receiver.translator.configure(config)
            self._receiver.max_request_bytes = config.max_request_bytes
        if _listeners(old) != _listeners(config):
            await self._stop_listeners()
            try:
                await self._start(config)
            except OSError:
                await self._stop_listeners()
                await self._start(old)
                raise
        self.config = config

    async def stop(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        await self._stop_listeners()

    async def _expire_loop(self) -> None:
        """Forget the streams that stopped sending (their series go with the store's expiry)."""
        while True:
            await asyncio.sleep(EXPIRY_INTERVAL)
            if self._receiver is None:
                continue
            try:
                await asyncio.to_thread(self._expire)
            except Exception:
                log.exception("otlp: stream expiry failed")

    def _expire(self) -> None:
        with self._lock:
            self._receiver.translator.expire()

    async def _stop_listeners(self) -> None:
        if self._http is not None:
            await self._http.stop()
            self._http = None
        if self._grpc is not None:
            await self._grpc.stop()
            self._grpc = None

    async def _start(self, config: OtlpConfig) -> None:
        if not config.enabled or not (config.http.enabled or config.grpc.enabled):
            return
        receiver = self._receiver_for(config)
        try:
            if config.http.enabled:
                from exporter.otlp.http import PATH, HttpReceiver

                handler = HttpReceiver(receiver)
                assert self._app is not None and self._web is not None
                options = dataclasses.replace(
                    self._web, body_routes={PATH: handler.handle}, builtin_routes=False, routes={},
                    max_body_bytes=config.max_request_bytes, on_refused=handler.refused_by_server)
                server = Server(self._app, options)
                host, port = split_address(config.http.listen_address)
                try:
                    await server.start(host, port)
                except OSError as err:
                    raise OSError(f"otlp http: cannot listen on {config.http.listen_address}: {err}") from None
                self._http = server
                log.info("otlp: OTLP/HTTP listening", extra={"address": config.http.listen_address})
            if config.grpc.enabled:
                try:
                    from exporter.otlp.grpc import GrpcReceiver
                except ImportError as err:
                    raise MissingExtra(f"{EXTRA_HINT} ({err})") from None
                assert self._web is not None
                grpc_receiver = GrpcReceiver(receiver, config.grpc.listen_address, self._web.web_config)
                await grpc_receiver.start()
                self._grpc = grpc_receiver
                log.info("otlp: OTLP/gRPC listening", extra={"address": config.grpc.listen_address})
        except BaseException:
            await self._stop_listeners()
            raise

    def _receiver_for(self, config: OtlpConfig) -> Any:
        if self._receiver is None:
            try:
                from exporter.otlp.receiver import Receiver
                from exporter.otlp.translate import Translator

                translator = Translator(config, self._store, self._stats, self._counted)
                self._receiver = Receiver(translator, self._lock, self._stats, config.max_request_bytes)
            except ImportError as err:
                raise MissingExtra(f"{EXTRA_HINT} ({err})") from None
        return self._receiver


def _listeners(config: OtlpConfig) -> tuple[object, ...]:
    return (config.enabled, config.http, config.grpc)
