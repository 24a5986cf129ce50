"""Promises about the code's shape: docstrings, import direction, generated docs in step."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from exporter import reference

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "exporter"


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def test_every_module_says_what_it_is_for() -> None:
    missing = [str(p.relative_to(ROOT)) for p in _modules()
               if p.stat().st_size and ast.get_docstring(ast.parse(p.read_text())) is None]
    assert missing == []


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_nothing_imports_the_daemon_or_the_cli() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in _modules()
                 if p.name not in ("cli.py", "__main__.py")
                 and _imports(p) & {"exporter.daemon", "exporter.cli"}]
    assert offenders == []


def test_model_families_and_schema_import_nothing_of_the_daemon() -> None:
    for name in ("model.py", "families.py", "schema.py", "cumulative.py"):
        inner = {m for m in _imports(PACKAGE / name) if m.startswith("exporter")}
        assert inner <= {"exporter.model", "exporter", "exporter.durations"}, (name, inner)


def test_sources_never_import_the_exposition() -> None:
    for path in [*(PACKAGE / "collectors").glob("*.py"), *(PACKAGE / "statsd").glob("*.py")]:
        assert "exporter.exposition" not in _imports(path), path


def test_collectors_never_import_the_store() -> None:
    """Collectors return families and write nowhere; what they keep across scrapes is exporter.cumulative."""
    for path in (PACKAGE / "collectors").glob("*.py"):
        assert "exporter.store" not in _imports(path), path


def test_metric_reference_is_generated_from_the_code() -> None:
    shipped = (ROOT / "docs" / "metrics.md").read_text()
    assert shipped == reference.markdown(), "regenerate: apm-exporter metrics-reference > docs/metrics.md"


def test_client_import_stays_light() -> None:
    code = ("import sys, exporter.client; heavy = {'aiohttp', 'psutil', 'pydantic', 'yaml', 'h11', "
            "'exporter.daemon', 'exporter.config', 'exporter.store'}; print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def _our_modules(path: Path) -> set[str]:
    """The exporter modules a file imports, `from exporter import wire` read as exporter.wire."""
    found = {m for m in _imports(path) if m.startswith("exporter.")}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "exporter" and node.level == 0:
            found.update(f"exporter.{a.name}" for a in node.names)
    return found


def test_wire_names_import_nothing_of_ours_and_the_client_only_them() -> None:
    """exporter/wire.py is what the in-app client shares with the daemon: stdlib only."""
    assert _our_modules(PACKAGE / "wire.py") == set()
    for path in (PACKAGE / "client").glob("*.py"):
        assert {m for m in _our_modules(path) if not m.startswith("exporter.client")} <= {"exporter.wire"}, path


def test_the_push_path_never_imports_the_scraper_or_the_exposition() -> None:
    for path in (PACKAGE / "statsd").glob("*.py"):
        assert not _imports(path) & {"exporter.scrape", "exporter.exposition", "exporter.web"}, path


def test_the_otlp_path_never_imports_the_scraper_or_the_exposition() -> None:
    """OTLP writes the store like StatsD; its HTTP receiver is a route on web.Server, so web is allowed."""
    for path in (PACKAGE / "otlp").glob("*.py"):
        assert not _imports(path) & {"exporter.scrape", "exporter.exposition"}, path
