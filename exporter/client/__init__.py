"""Instrument a Python app for apm-exporter in two lines.

    from exporter.client import Telemetry
    tm = Telemetry()            # $APM_STATSD_ADDRESS or 127.0.0.1:8125

    @tm.timed("checkout")
    def checkout(cart): ...

Stdlib only: importing this package loads nothing of the daemon (no aiohttp, psutil,
pydantic, yaml or h11). See docs/client.md.
"""

from exporter.client._api import Telemetry, Timed
from exporter.client._handles import Batch, Cache, Pool, Queue
from exporter.client.integrations import Instrumented

__all__ = ["Batch", "Cache", "Instrumented", "Pool", "Queue", "Telemetry", "Timed"]
