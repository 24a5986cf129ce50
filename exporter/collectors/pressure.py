"""Pressure stall information: /proc/pressure/{cpu,memory,io} (Linux 4.20+, CONFIG_PSI).

Utilisation says how busy a resource is; pressure says how long work waited for it,
which is what a user feels. Each file has a `some` line (at least one task delayed)
and, for memory and io (and cpu since 5.13, always 0 host-wide), a `full` line
(every non-idle task delayed at once). `total=` is cumulative microseconds: exported
as a counter in seconds, so rate() gives the share of time, as node_exporter does;
the kernel's own avg10/avg60/avg300 are left out (rate() over any window replaces them).
"""

from __future__ import annotations

RESOURCES = ("cpu", "memory", "io")


def parse_pressure(text: str) -> dict[str, float]:
    """{"some": seconds, "full": seconds} from one pressure file; a line without total= is skipped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        for field in rest.split():
            if field.startswith("total="):
                out[kind] = int(field[6:]) / 1e6
    return out
