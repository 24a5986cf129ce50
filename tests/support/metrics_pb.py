"""The official generated classes of the Prometheus client model, made at test time.

`tests/fixtures/proto/io/prometheus/client/metrics.proto` is vendored from
prometheus/client_model (Apache-2.0); protoc from PyPI `grpcio-tools` turns it into
Python once per session, and `decode` reads a delimited scrape with them: the
independent reference our hand-written encoder is checked against.
"""

from __future__ import annotations

import importlib.util
import math
import tempfile
from itertools import accumulate
from pathlib import Path
from types import ModuleType
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from exporter.exposition import format_bound

PROTO_ROOT = Path(__file__).resolve().parent.parent / "fixtures" / "proto"
_module: ModuleType | None = None


def metrics_pb2() -> ModuleType:
    """`io.prometheus.client` generated classes (generated on first use)."""
    global _module
    if _module is None:
        import grpc_tools
        from grpc_tools import protoc

        out = Path(tempfile.mkdtemp(prefix="metrics_pb2-"))
        well_known = Path(grpc_tools.__file__).parent / "_proto"
        status = protoc.main(["protoc", f"-I{PROTO_ROOT}", f"-I{well_known}", f"--python_out={out}",
                              str(PROTO_ROOT / "io/prometheus/client/metrics.proto")])
        if status != 0:
            raise RuntimeError(f"protoc failed with status {status}")
        # Loaded from its file: the package path `io.` would collide with the standard library.
        spec = importlib.util.spec_from_file_location("metrics_pb2", out / "io/prometheus/client/metrics_pb2.py")
        assert spec is not None and spec.loader is not None
        _module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_module)
    return _module


def decode(data: bytes) -> list[Any]:
    """Every MetricFamily of a delimited scrape, in order; raises if the bytes do not parse."""
    from google.protobuf.internal.decoder import _DecodeVarint  # type: ignore[attr-defined]

    pb2 = metrics_pb2()
    families = []
    pos = 0
    while pos < len(data):
        size, pos = _DecodeVarint(data, pos)
        family = pb2.MetricFamily()
        family.ParseFromString(data[pos:pos + size])
        families.append(family)
        pos += size
    if pos != len(data):
        raise ValueError("trailing bytes after the last message")
    return families


SampleKey = tuple[str, frozenset[tuple[str, str]], Any]


def _key(name: str, labels: dict[str, str], value: float) -> SampleKey:
    return name, frozenset((k, v) for k, v in labels.items() if v != ""), "NaN" if math.isnan(value) else value


def text_samples(text: bytes) -> set[SampleKey]:
    return {_key(s.name, s.labels, s.value)
            for f in text_string_to_metric_families(text.decode()) for s in f.samples}


def proto_samples(families: list[Any]) -> set[SampleKey]:
    """Samples as Prometheus reads them from the messages (+Inf bucket from the count)."""
    pb2 = metrics_pb2()
    out = set()
    for f in families:
        for m in f.metric:
            labels = {p.name: p.value for p in m.label}
            if f.type in (pb2.COUNTER, pb2.GAUGE):
                out.add(_key(f.name, labels, m.counter.value if f.type == pb2.COUNTER else m.gauge.value))
            elif f.type == pb2.SUMMARY:
                s = m.summary
                for q in s.quantile:
                    out.add(_key(f.name, {**labels, "quantile": format_bound(q.quantile)}, q.value))
                out.add(_key(f.name + "_count", labels, s.sample_count))
                out.add(_key(f.name + "_sum", labels, s.sample_sum))
            else:
                h = m.histogram
                count = h.sample_count_float or h.sample_count
                for b in h.bucket:
                    cumulative = b.cumulative_count_float or b.cumulative_count
                    out.add(_key(f.name + "_bucket", {**labels, "le": format_bound(b.upper_bound)}, cumulative))
                out.add(_key(f.name + "_bucket", {**labels, "le": "+Inf"}, count))
                out.add(_key(f.name + "_count", labels, count))
                out.add(_key(f.name + "_sum", labels, h.sample_sum))
    return out


def native_buckets(spans: Any, deltas: Any) -> dict[int, float]:
    """A histogram's spans and deltas (or counts) as {bucket index: count}, empty buckets left out."""
    keys: list[int] = []
    index = 0
    for span in spans:
        index += span.offset
        keys += range(index, index + span.length)
        index += span.length
    return {k: c for k, c in zip(keys, accumulate(deltas)) if c}
