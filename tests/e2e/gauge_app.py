"""A WSGI app for gunicorn whose every worker reports one pool's active connections.

Each worker (a fresh import: no preload) reads the wanted value from the file named
by $GAUGE_FILE every 50 ms, as an app would poll its pool, and reports it through
the client library; the test changes the file to change every worker at once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from exporter.client import Telemetry

tm = Telemetry(os.environ["APM_STATSD_ADDRESS"], flush_interval=0.2)
pool = tm.pool("db")


def _follow(path: str) -> None:
    while True:
        try:
            with open(path) as f:
                pool.set(active=int(f.read().strip() or 0))
        except (OSError, ValueError):
            pass
        time.sleep(0.05)


threading.Thread(target=_follow, args=(os.environ["GAUGE_FILE"],), daemon=True).start()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
