"""The wire names (exporter/wire.py) agree with docs/statsd-conventions.md and exporter/families.py."""

from __future__ import annotations

import re
from pathlib import Path

from exporter import families, wire

DOC = Path(__file__).resolve().parents[2] / "docs" / "statsd-conventions.md"


def _doc_rows() -> dict[str, tuple[str, str]]:
    """wire name -> (type, family) from the conventions table."""
    rows = {}
    for match in re.finditer(r"^\| `(apm\.[a-z.]+):[^|`]*\\\|([a-z]+)[^`]*` \| `apm_([a-z_]+)", DOC.read_text(), re.MULTILINE):
        rows[match.group(1)] = (match.group(2), match.group(3))
    return rows


def test_every_convention_in_the_doc_is_on_the_wire_and_back() -> None:
    doc = _doc_rows()
    ours = {name: (conv.type, conv.family) for name, conv in wire.CONVENTIONS.items()}

    assert len(doc) >= 17
    assert doc == ours


def test_every_family_a_convention_feeds_exists_and_each_label_has_a_source() -> None:
    specs = {spec.name: spec for spec in families.all_specs() if spec.namespaced}
    for name, conv in wire.CONVENTIONS.items():
        assert conv.family in specs, f"{name} -> {conv.family} is not in exporter/families.py"
        assert set(conv.tags) | set(conv.fixed) == set(specs[conv.family].labels), name
        assert not set(conv.tags) & set(conv.fixed), name


def test_constants_match_the_table() -> None:
    constants = {v for k, v in vars(wire).items() if k.isupper() and isinstance(v, str) and v.startswith("apm.")}

    assert constants == set(wire.CONVENTIONS)
