"""Duration text ("500ms", "15s", "1h30m") to seconds: the one parser, stdlib only.

Config sections (schema.Duration), the web config (Go's units) and the tools'
command lines all read durations through `parse_duration`; it lives apart from
schema.py so that a CLI tool can use it without importing pydantic.
"""

from __future__ import annotations

import re

UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# Go's time.ParseDuration: what exporter-toolkit's files are written with (no days there).
GO_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, units: dict[str, float] = UNIT_SECONDS) -> float:
    """Seconds in `text`, a sequence of number+unit parts ("1h30m", "1.5s", "250ms") with
    units from `units`; raises ValueError for anything else."""
    names = "|".join(sorted(map(re.escape, units), key=len, reverse=True))  # "ms" before "m"
    part = rf"(\d+(?:\.\d+)?)({names})"
    if not text or not re.fullmatch(f"(?:{part})+", text):
        raise ValueError(f"invalid duration {text!r}: expected e.g. {', '.join(list(units)[-4:])} "
                         f"parts such as 500ms, 15s, 5m, 1h30m")
    return sum(float(n) * units[u] for n, u in re.findall(part, text))
