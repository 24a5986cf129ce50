"""`import exporter.client` must cost an app nothing of the daemon."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "exporter" / "client"
FORBIDDEN = ("aiohttp", "psutil", "pydantic", "yaml", "h11", "prometheus_client",
             "sqlalchemy", "redis", "psycopg", "psycopg_pool", "cachetools")


def test_importing_the_client_loads_nothing_of_the_daemon() -> None:
    """In a fresh interpreter, the client and a Telemetry bring in only the stdlib, exporter/__init__
    and exporter/wire.py (the wire names it shares with the daemon)."""
    code = ("import sys, json; from exporter.client import Telemetry; from exporter.client import testing;"
            "Telemetry('127.0.0.1:9'); print(json.dumps(sorted(sys.modules)))")
    modules = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                        text=True).stdout)
    ours = {m for m in modules if m == "exporter" or m.startswith("exporter.")}
    third_party = {m.split(".")[0] for m in modules} & set(FORBIDDEN)

    assert set() == third_party
    assert {"exporter", "exporter.wire", "exporter.client", "exporter.client._api", "exporter.client._exemplars",
            "exporter.client._handles", "exporter.client._sender", "exporter.client.integrations", "exporter.client.testing"} == ours


def test_client_source_imports_only_stdlib_and_itself_at_module_level() -> None:
    """Third-party libraries are imported inside the integration that needs them, never at the top."""
    stdlib = set(sys.stdlib_module_names)
    for path in CLIENT.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top in stdlib or top == "__future__" or name.startswith("exporter.client") \
                    or name in ("exporter", "exporter.wire"), f"{path.name} imports {name} at module level"
