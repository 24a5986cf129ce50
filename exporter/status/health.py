"""The 0-100 health score with its reasons, one definition for `report` and the status page.

Both hand it the same shape (the report's JSON: `host`, `operations`, `pools`,
`targets_down`), so a score on the page and a score in a saved report mean the
same thing; the thresholds are in docs/tools.md, "Health score".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exporter.tools.formats import ms, pct

# Outcomes that are not errors (anything else in `outcome` counts against the error ratio).
OK_OUTCOMES = frozenset({"ok", "success", "hit", ""})


@dataclass(frozen=True)
class Objectives:
    """Thresholds of the health score (documented in docs/tools.md)."""

    p99: float = 0.5

def health(report: dict[str, Any], objectives: Objectives) -> dict[str, Any]:
    """0-100: 100 minus penalties (see docs/tools.md, "Health score"), never below 0."""
    penalties: list[dict[str, Any]] = []

    def penalise(points: int, reason: str) -> None:
        penalties.append({"points": points, "reason": reason})

    h = report["host"]
    for key, what, (hi, hi_pts), (lo, lo_pts) in (
            ("cpu_busy_ratio", "CPU busy", (0.90, 25), (0.70, 10)),
            ("memory_used_ratio", "memory used", (0.95, 25), (0.80, 10))):
        v = h.get(key)
        if v is not None and v > hi:
            penalise(hi_pts, f"{what} {pct(v, 1)} > {pct(hi, 0)}")
        elif v is not None and v > lo:
            penalise(lo_pts, f"{what} {pct(v, 1)} > {pct(lo, 0)}")
    if h.get("filesystems"):
        worst = max(h["filesystems"], key=lambda d: d["used_ratio"])
        if worst["used_ratio"] > 0.95:
            penalise(20, f"filesystem {worst['mountpoint']} {pct(worst['used_ratio'], 1)} full > 95%")
        elif worst["used_ratio"] > 0.85:
            penalise(10, f"filesystem {worst['mountpoint']} {pct(worst['used_ratio'], 1)} full > 85%")
    ops = report["operations"]
    total = sum(o["count"] for o in ops)
    if total:
        ratio = sum(o["errors"] for o in ops) / total
        for limit, points in ((0.05, 25), (0.01, 15), (0.001, 5)):
            if ratio > limit:
                penalise(points, f"error ratio {pct(ratio)} > {pct(limit, 1)}")
                break
    slow = [o for o in ops if o["p99"] is not None and o["p99"] > objectives.p99]
    if slow:
        names = ", ".join(o["operation"] for o in slow[:3]) + (" …" if len(slow) > 3 else "")
        penalise(min(30, 10 * len(slow)), f"{len(slow)} operation(s) with p99 over {ms(objectives.p99)}: {names}")
    saturated = [p for p in report["pools"]
                 if (p["utilisation"] is not None and p["utilisation"] >= 0.9) or p["waiting"] > 0]
    if saturated:
        penalise(min(20, 10 * len(saturated)),
                 f"{len(saturated)} pool(s) saturated or with waiters: " + ", ".join(p["pool"] for p in saturated))
    down = report["targets_down"]
    if down:
        penalise(min(20, 10 * len(down)), f"{len(down)} probed target(s) down")
    score = max(0, 100 - sum(p["points"] for p in penalties))
    return {"score": score, "penalties": penalties}

