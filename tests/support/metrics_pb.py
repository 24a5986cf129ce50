"""The official generated classes of the Prometheus client model, made at test time.

`tests/fixtures/proto/io/prometheus/client/metrics.proto` is vendored from
prometheus/client_model (Apache-2.0); protoc from PyPI `grpcio-tools` turns it into
Python once per session, and `decode` reads a delimited scrape with them: the
independent reference our hand-written encoder is checked against.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

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
