"""examples/shop.py runs against real SQLite and Redis and feeds all four concepts to the daemon."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.client.conftest import ROOT, Sidecar
from tests.support.servers import RedisServer


def test_shop_example_in_loop_mode(sidecar: Sidecar, redis_server: RedisServer, tmp_path: Path) -> None:
    env = {**os.environ, "APM_STATSD_ADDRESS": sidecar.statsd, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "shop.py"), "--redis", redis_server.url,
                           "--db", str(tmp_path / "shop.db"), "--duration", "5", "--rate", "200"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert 0 == done.returncode, done.stderr
    # The shop's last lines leave at its exit, over UDP: read once the daemon has stopped counting new ones.
    families, lines = sidecar.daemon.scrape(), -1.0
    deadline = time.monotonic() + 30
    while (now := sum(s.value for s in families["apm_exporter_statsd_lines"].samples if s.name.endswith("_total"))) != lines:
        assert time.monotonic() < deadline, "the daemon kept counting lines for 30 s"
        lines = now
        time.sleep(0.3)
        families = sidecar.daemon.scrape()

    def total(family: str, **labels: str) -> float:
        return sum(s.value for s in families[family].samples
                   if all(s.labels.get(k) == v for k, v in labels.items()) and not s.name.endswith(("_bucket", "_sum")))

    checkouts = total("apm_operation_duration_seconds", operation="checkout")
    assert checkouts > 50
    assert total("apm_cache_requests", cache="prices", level="l1") == checkouts - total(
        "apm_operation_duration_seconds", operation="checkout", outcome="error")
    assert total("apm_cache_requests", cache="prices", level="l2", result="miss") > 0
    assert total("apm_pool_wait_duration_seconds", pool="shop-db") > 0
    assert total("apm_pool_wait_duration_seconds", pool="shop-redis") > 0
    assert total("apm_batch_items", queue="orders") == total("apm_cache_requests", cache="prices", level="l1")
    # The process exited cleanly: its gauges were taken back.
    assert 0 == total("apm_cache_capacity_entries", cache="prices", level="l1")
    assert 0 == total("apm_queue_depth", queue="orders")
