"""Debian's prometheus-node-exporter run beside our host collector: the reference its figures are checked against."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client.parser import text_string_to_metric_families

from tests.support.binaries import require
from tests.support.net import free_port, wait_for_http

Samples = dict[str, dict[frozenset[tuple[str, str]], float]]  # sample name -> labels -> value


class NodeExporter:
    def __init__(self, url: str) -> None:
        self.url = url

    def scrape(self) -> Samples:
        """Every sample by its exposed name (counters keep `_total`), keyed by its label set."""
        text = urllib.request.urlopen(self.url, timeout=10).read().decode()
        out: Samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out.setdefault(s.name, {})[frozenset(s.labels.items())] = s.value
        return out


@contextmanager
def node_exporter(*flags: str) -> Iterator[NodeExporter]:
    """node_exporter with only the given collectors (`--collector.disable-defaults` plus `flags`)."""
    binary = require("prometheus-node-exporter")
    port = free_port()
    proc = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
                             *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for_http(url, timeout=60)
        yield NodeExporter(url)
    finally:
        proc.terminate()
        proc.wait()
