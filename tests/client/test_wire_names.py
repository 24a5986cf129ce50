"""The client's hard-coded wire names agree with docs/statsd-conventions.md and exporter/families.py."""

from __future__ import annotations

import re
from pathlib import Path

from exporter import families
from exporter.client import _wire

DOC = Path(__file__).resolve().parents[2] / "docs" / "statsd-conventions.md"


def _doc_rows() -> dict[str, tuple[str, str]]:
    """wire name -> (type, family) from the conventions table."""
    rows = {}
    for match in re.finditer(r"^\| `(apm\.[a-z.]+):[^|`]*\\\|([a-z]+)[^`]*` \| `apm_([a-z_]+)", DOC.read_text(), re.MULTILINE):
        rows[match.group(1)] = (match.group(2), match.group(3))
    return rows


def test_every_convention_in_the_doc_is_in_the_client_and_back() -> None:
    doc = _doc_rows()
    client = {name: (kind, family) for name, (kind, family, _) in _wire.CONVENTIONS.items()}

    assert len(doc) >= 17
    assert doc == client


def test_every_family_the_client_feeds_exists_with_its_labels() -> None:
    specs = {spec.name: spec for spec in families.all_specs()}
    for name, (_, family, fixed) in _wire.CONVENTIONS.items():
        assert family in specs, f"{name} -> {family} is not in exporter/families.py"
        assert set(fixed) <= set(specs[family].labels), f"{name}: {fixed} not labels of {family}"


def test_constants_match_the_table() -> None:
    constants = {v for k, v in vars(_wire).items() if k.isupper() and isinstance(v, str)}

    assert constants == set(_wire.CONVENTIONS)
