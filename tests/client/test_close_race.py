"""close() takes the gauges back for good: no periodic flush can announce them again."""

from __future__ import annotations

import threading
import time

from exporter.client import Telemetry
from exporter.client.testing import parse_line


class YieldingLock:
    """A lock that pauses after each release, so a waiting thread gets it next."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, *args: object) -> bool:
        return self._lock.acquire(*args)  # type: ignore[arg-type]

    def release(self) -> None:
        self._lock.release()
        time.sleep(0.05)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def test_a_flush_racing_close_cannot_re_announce_retracted_gauges() -> None:
    tm = Telemetry("127.0.0.1:9", flush_interval=3600)
    sender = tm._sender
    sent: list[str] = []
    racer: list[threading.Thread] = []

    def sink(lines: list[str]) -> None:
        sent.extend(lines)
        if any(line.startswith("apm.pool.active:0|") for line in lines) and not racer:
            # The flush thread wakes exactly as the final flush hands over its lines.
            racer.append(threading.Thread(target=sender.flush))
            racer[0].start()

    sender.sink = sink
    sender._flush_lock = YieldingLock()  # type: ignore[assignment]
    tm.pool("db").set(active=3, idle=1)
    sender.flush()
    tm.close()
    racer[0].join(5)
    # Shares are absolute: the last one sent is what the daemon keeps until the instance expires.
    last = [s.value for line in sent if line.startswith("apm.pool.active:") for s in parse_line(line)][-1]
    assert last == 0, sent
