"""`apm-exporter report`: the performance report a tuner reads, from a daemon or a Prometheus.

Two sources give the same thing, a *window*: for counters and histograms the
increase over the window, for gauges the latest value.

- a daemon's `/metrics`, scraped twice `--interval` seconds apart (increase =
  second − first, or the second value after a counter reset), or once with
  `--interval 0` (totals since the daemon started, no rates);
- a Prometheus server's API (`--prometheus URL --window 5m`): `increase(x[5m])`
  and instant gauges, summed over instances (`--selector` narrows them).

`--html FILE` also writes a self-contained page (exporter/status/page.py): the
daemon's own status page (its `/api/v1/status`, with 1/5/15-minute windows and
sparklines) for `--url`, the window's figures for `--prometheus`, and per-operation
latency bars before/after for `--compare`.

Quantiles come from the windowed buckets by exactly PromQL's histogram_quantile
(tools/quantiles.py), so the report agrees with Grafana panels over the same
window. Family names are read from exporter/families.py.
"""

from __future__ import annotations

import argparse
import json
import math
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from exporter import families as F
from exporter.model import FamilySpec, MetricType
from exporter.status import page
from exporter.status.health import OK_OUTCOMES, Objectives, health
from exporter.status.service import STATUS_PATH
from exporter.tools._cli import duration, ms, nan_to_none, num, pct, table
from exporter.tools.quantiles import histogram_quantile

Labels = frozenset[tuple[str, str]]
QUANTILES = (0.5, 0.95, 0.99)

# Families the report reads. Counters and histograms are windowed (increase); gauges are last values.
WINDOWED: tuple[FamilySpec, ...] = (
    F.OPERATION_DURATION, F.CACHE_REQUESTS, F.CACHE_EVICTIONS, F.POOL_WAIT_DURATION, F.POOL_TIMEOUTS,
    F.HOST_CPU_SECONDS, F.SQL_ERRORS, F.SQL_SLOW, F.BATCH_ITEMS)
GAUGES: tuple[FamilySpec, ...] = (
    F.CACHE_ENTRIES, F.CACHE_CAPACITY, F.POOL_CONNECTIONS, F.POOL_MAX_CONNECTIONS, F.POOL_PENDING,
    F.POOL_CLIENTS, F.POOL_MAX_WAIT, F.QUEUE_DEPTH, F.QUEUE_CONSUMER_LAG, F.QUEUE_PENDING, F.HOST_CPUS,
    F.HOST_LOAD1, F.HOST_MEMORY_TOTAL, F.HOST_MEMORY_AVAILABLE, F.HOST_FS_SIZE, F.HOST_FS_AVAIL,
    F.SQL_FULL_SCAN, F.UP)


class ReportError(Exception):
    """The source could not be read (unreachable, not an exposition, API error)."""


@dataclass
class Window:
    """Samples by name (namespace stripped): increases for counters, last values for gauges."""

    seconds: float | None  # None: one scrape, counters are totals since the daemon started
    samples: dict[str, dict[Labels, float]] = field(default_factory=lambda: defaultdict(dict))
    source: str = ""

    def get(self, name: str) -> Iterable[tuple[dict[str, str], float]]:
        for labels, value in self.samples.get(name, {}).items():
            yield dict(labels), value


# --- sources --------------------------------------------------------------------------


def _opener(insecure: bool) -> urllib.request.OpenerDirector:
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))


def _fetch(url: str, headers: dict[str, str], insecure: bool, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers=headers)
    try:
        with _opener(insecure).open(request, timeout=timeout) as r:
            return r.read()  # type: ignore[no-any-return]
    except urllib.error.HTTPError as err:
        raise ReportError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ReportError(f"{url}: {reason}") from None


def parse_exposition(text: str, namespace: str) -> tuple[dict[str, dict[Labels, float]], set[str]]:
    """Samples by name (namespace stripped) and the names that are counters/histograms."""
    from prometheus_client.parser import text_string_to_metric_families

    prefix = f"{namespace}_" if namespace else ""
    samples: dict[str, dict[Labels, float]] = defaultdict(dict)
    cumulative: set[str] = set()
    try:
        for family in text_string_to_metric_families(text):
            windowed = family.type in ("counter", "histogram", "summary")
            for s in family.samples:
                if s.name.endswith("_created"):
                    continue
                name = s.name[len(prefix):] if prefix and s.name.startswith(prefix) else s.name
                samples[name][frozenset(s.labels.items())] = float(s.value)
                if windowed and not (family.type == "summary" and "quantile" in s.labels):
                    cumulative.add(name)
    except (ValueError, TypeError, IndexError) as err:
        raise ReportError(f"not a Prometheus text exposition: {err}") from None
    return samples, cumulative


def from_metrics(url: str, interval: float, namespace: str, headers: dict[str, str] | None = None,
                 insecure: bool = False, timeout: float = 10.0) -> Window:
    """Scrape a daemon's /metrics twice, `interval` seconds apart (once if interval is 0)."""
    hdrs = {"Accept": "text/plain;version=0.0.4", **(headers or {})}

    def scrape() -> tuple[float, dict[str, dict[Labels, float]], set[str]]:
        started = time.monotonic()
        body = _fetch(url, hdrs, insecure, timeout).decode("utf-8", "replace")
        at = (started + time.monotonic()) / 2
        return (at, *parse_exposition(body, namespace))

    t1, first, cumulative = scrape()
    if interval <= 0:
        return Window(None, first, source=f"{url} (one scrape: totals since the daemon started)")
    time.sleep(interval)
    t2, second, cumulative2 = scrape()
    window = Window(t2 - t1, source=f"{url} (two scrapes {t2 - t1:.1f}s apart)")
    for name, series in second.items():
        before = first.get(name, {})
        is_counter = name in cumulative or name in cumulative2
        for labels, value in series.items():
            if is_counter:
                old = before.get(labels)
                # A counter lower than before was reset (daemon restart): count from zero.
                window.samples[name][labels] = value if old is None or value < old else value - old
            else:
                window.samples[name][labels] = value
    return window


def _sample_names(spec: FamilySpec) -> list[str]:
    if spec.type is MetricType.HISTOGRAM:
        return [f"{spec.name}_bucket", f"{spec.name}_count", f"{spec.name}_sum"]
    return [spec.name]


def from_prometheus(base: str, window: float, namespace: str, selector: str = "",
                    headers: dict[str, str] | None = None, insecure: bool = False,
                    timeout: float = 30.0) -> Window:
    """Query a Prometheus server: increase() over the window for counters, gauges as of now."""
    rng = f"{int(window)}s" if float(window).is_integer() else f"{int(window * 1000)}ms"
    matcher = "{" + selector.strip().strip("{}") + "}" if selector.strip() else ""
    out = Window(window, source=f"{base} (Prometheus, increase over {rng})")

    def query(expr: str) -> list[dict[str, Any]]:
        url = f"{base.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            body = json.loads(_fetch(url, headers or {}, insecure, timeout))
        except json.JSONDecodeError:
            raise ReportError(f"{base}: the API answered with something that is not JSON") from None
        if body.get("status") != "success":
            raise ReportError(f"{base}: query {expr!r} failed: {body.get('error', body)}")
        result = body["data"]["result"]
        return result if isinstance(result, list) else []

    prefix = f"{namespace}_" if namespace else ""
    for specs, windowed in ((WINDOWED, True), (GAUGES, False)):
        for spec in specs:
            for name in _sample_names(spec):
                full = prefix + name if spec.namespaced else name
                inner = f"increase({full}{matcher}[{rng}])" if windowed else f"{full}{matcher}"
                for row in query(f"sum without (instance, job) ({inner})"):
                    labels = frozenset((k, v) for k, v in row["metric"].items() if k != "__name__")
                    out.samples[name][labels] = float(row["value"][1])
    return out


# --- the report ------------------------------------------------------------------------


def _by(window: Window, name: str, *keys: str) -> dict[tuple[str, ...], list[tuple[dict[str, str], float]]]:
    groups: dict[tuple[str, ...], list[tuple[dict[str, str], float]]] = defaultdict(list)
    for labels, value in window.get(name):
        groups[tuple(labels.get(k, "") for k in keys)].append((labels, value))
    return groups


def _quantiles(rows: list[tuple[dict[str, str], float]]) -> list[float]:
    """Sum buckets by `le` (as `sum by (le)` does), then histogram_quantile for each q."""
    buckets: dict[str, float] = defaultdict(float)
    for labels, value in rows:
        if "le" in labels:
            buckets[labels["le"]] += value
    pairs = [(float(le), count) for le, count in buckets.items()]
    return [histogram_quantile(q, pairs) for q in QUANTILES]


def _rate(value: float, seconds: float | None) -> float | None:
    return value / seconds if seconds else None


def operations(window: Window) -> list[dict[str, Any]]:
    base = F.OPERATION_DURATION.name
    counts = _by(window, f"{base}_count", "operation")
    sums = _by(window, f"{base}_sum", "operation")
    buckets = _by(window, f"{base}_bucket", "operation")
    out = []
    for key, rows in counts.items():
        total = sum(v for _, v in rows)
        if total <= 0:
            continue
        errors = sum(v for labels, v in rows if labels.get("outcome", "ok") not in OK_OUTCOMES)
        p50, p95, p99 = _quantiles(buckets.get(key, []))
        total_sum = sum(v for _, v in sums.get(key, []))
        out.append({
            "operation": key[0], "count": total, "rate": _rate(total, window.seconds),
            "errors": errors, "error_ratio": errors / total,
            "p50": nan_to_none(p50), "p95": nan_to_none(p95), "p99": nan_to_none(p99),
            "mean": total_sum / total,
        })
    # Slowest first: p99, then p95, then mean; operations without a p99 last.
    out.sort(key=_slowest_first)
    return out


def _slowest_first(o: dict[str, Any]) -> tuple[float, ...]:
    return tuple(-(float(o[k]) if o[k] is not None else -math.inf) for k in ("p99", "p95", "mean"))


def caches(window: Window) -> list[dict[str, Any]]:
    requests = _by(window, F.CACHE_REQUESTS.name, "cache", "level")
    evictions = _by(window, F.CACHE_EVICTIONS.name, "cache", "level")
    entries = _by(window, F.CACHE_ENTRIES.name, "cache", "level")
    capacity = _by(window, F.CACHE_CAPACITY.name, "cache", "level")
    out = []
    for key in sorted(set(requests) | set(entries)):
        rows = requests.get(key, [])
        hits = sum(v for labels, v in rows if labels.get("result") == "hit")
        lookups = sum(v for _, v in rows)
        held = sum(v for _, v in entries.get(key, [])) if key in entries else None
        cap = sum(v for _, v in capacity.get(key, [])) if key in capacity else None
        out.append({
            "cache": key[0], "level": key[1], "lookups": lookups,
            "hit_ratio": hits / lookups if lookups else None,
            "lookup_rate": _rate(lookups, window.seconds),
            "eviction_rate": _rate(sum(v for _, v in evictions.get(key, [])), window.seconds),
            "entries": held, "capacity": cap,
            "fill_ratio": held / cap if held is not None and cap else None,
        })
    return out


def pools(window: Window) -> list[dict[str, Any]]:
    conns = _by(window, F.POOL_CONNECTIONS.name, "pool")
    maxes = _by(window, F.POOL_MAX_CONNECTIONS.name, "pool")
    pending = _by(window, F.POOL_PENDING.name, "pool")
    clients = _by(window, F.POOL_CLIENTS.name, "pool")
    max_wait = _by(window, F.POOL_MAX_WAIT.name, "pool")
    wait_buckets = _by(window, f"{F.POOL_WAIT_DURATION.name}_bucket", "pool")
    timeouts = _by(window, F.POOL_TIMEOUTS.name, "pool")
    names = set(conns) | set(maxes) | set(pending) | set(clients)
    out = []
    for key in sorted(names):
        active = sum(v for labels, v in conns.get(key, []) if labels.get("state") == "active")
        idle = sum(v for labels, v in conns.get(key, []) if labels.get("state") == "idle")
        most = sum(v for _, v in maxes[key]) if key in maxes else None
        capacity = most if most else (active + idle if key in conns else None)
        waiting = sum(v for labels, v in clients.get(key, []) if labels.get("state") == "waiting")
        queued = sum(v for _, v in pending.get(key, [])) + waiting
        wait_p99 = _quantiles(wait_buckets[key])[2] if key in wait_buckets else math.nan
        out.append({
            "pool": key[0], "active": active, "idle": idle, "max": most,
            "utilisation": active / capacity if capacity else None,
            "waiting": queued,
            "max_wait_seconds": max(v for _, v in max_wait[key]) if key in max_wait else None,
            "wait_p99": nan_to_none(wait_p99),
            "timeout_rate": _rate(sum(v for _, v in timeouts.get(key, [])), window.seconds),
        })
    return out


def queues(window: Window) -> list[dict[str, Any]]:
    depth = _by(window, F.QUEUE_DEPTH.name, "queue")
    lag = _by(window, F.QUEUE_CONSUMER_LAG.name, "queue")
    unacked = _by(window, F.QUEUE_PENDING.name, "queue")
    out = []
    for key in sorted(set(depth) | set(lag)):
        out.append({
            "queue": key[0],
            "depth": sum(v for _, v in depth[key]) if key in depth else None,
            "consumer_lag": max(v for _, v in lag[key]) if key in lag else None,
            "unacknowledged": sum(v for _, v in unacked[key]) if key in unacked else None,
        })
    out.sort(key=lambda q: -float(q["depth"] or 0))
    return out


def host(window: Window) -> dict[str, Any]:
    cpu = {labels.get("mode", ""): v for labels, v in window.get(F.HOST_CPU_SECONDS.name)}
    total_cpu = sum(cpu.values())
    busy = 1 - (cpu.get("idle", 0.0) + cpu.get("iowait", 0.0)) / total_cpu if total_cpu else None
    mem_total = sum(v for _, v in window.get(F.HOST_MEMORY_TOTAL.name))
    mem_avail = sum(v for _, v in window.get(F.HOST_MEMORY_AVAILABLE.name))
    sizes = {labels.get("mountpoint", ""): v for labels, v in window.get(F.HOST_FS_SIZE.name)}
    avail = {labels.get("mountpoint", ""): v for labels, v in window.get(F.HOST_FS_AVAIL.name)}
    disks = [{"mountpoint": m, "used_ratio": 1 - avail[m] / size, "avail_bytes": avail[m]}
             for m, size in sorted(sizes.items()) if size > 0 and m in avail]
    cpus = sum(v for _, v in window.get(F.HOST_CPUS.name)) or None
    load1 = sum(v for _, v in window.get(F.HOST_LOAD1.name)) if F.HOST_LOAD1.name in window.samples else None
    return {
        "cpu_busy_ratio": busy, "cpu_window": "window" if window.seconds else "since boot",
        "cpus": cpus, "load1": load1,
        "memory_used_ratio": 1 - mem_avail / mem_total if mem_total else None,
        "memory_total_bytes": mem_total or None,
        "filesystems": disks,
    }


def sql(window: Window) -> list[dict[str, Any]]:
    slow = {labels.get("query", ""): v for labels, v in window.get(F.SQL_SLOW.name)}
    errors = {labels.get("query", ""): v for labels, v in window.get(F.SQL_ERRORS.name)}
    out = [{"query": labels.get("query", ""), "table": labels.get("table", ""), "full_scan": value >= 1,
            "slow_runs": slow.get(labels.get("query", "")), "errors": errors.get(labels.get("query", ""))}
           for labels, value in window.get(F.SQL_FULL_SCAN.name)]
    out.sort(key=lambda r: (not r["full_scan"], r["query"], r["table"]))
    return out


def targets_down(window: Window) -> list[dict[str, str]]:
    return sorted(({"collector": labels.get("collector", ""), "target": labels.get("target", "")}
                   for labels, v in window.get(F.UP.name) if v == 0), key=lambda t: (t["collector"], t["target"]))


def build(window: Window, objectives: Objectives | None = None) -> dict[str, Any]:
    """The report as a JSON-ready dict (what --json prints and --compare reads)."""
    report: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": window.source,
        "window_seconds": window.seconds,
        "operations": operations(window),
        "caches": caches(window),
        "pools": pools(window),
        "queues": queues(window),
        "sql": sql(window),
        "host": host(window),
        "targets_down": targets_down(window),
    }
    report["health"] = health(report, objectives or Objectives())
    return report


# --- text ------------------------------------------------------------------------------


def render(report: dict[str, Any]) -> str:
    per = "/s" if report["window_seconds"] else ""
    lines = [f"Source: {report['source']}"]
    hs = report["health"]
    lines.append(f"Health: {hs['score']}/100")
    lines += [f"  -{p['points']:<3} {p['reason']}" for p in hs["penalties"]]
    ops = report["operations"]
    lines += ["", "Operations (slowest p99 first)" if ops else "Operations: none observed"]
    if ops:
        lines.append(table(
            ["operation", "rate/s" if per else "count", "errors", "p50", "p95", "p99", "mean"],
            [[o["operation"], num(o["rate"], 2) if per else num(o["count"], 0), pct(o["error_ratio"]),
              ms(o["p50"]), ms(o["p95"]), ms(o["p99"]), ms(o["mean"])] for o in ops]))
    if report["caches"]:
        lines += ["", "Caches", table(
            ["cache", "level", "hit ratio", f"lookups{per}", f"evictions{per}", "entries", "fill"],
            [[c["cache"], c["level"] or "-", pct(c["hit_ratio"], 1),
              num(c["lookup_rate"] if per else c["lookups"], 1),
              num(c["eviction_rate"], 1) if per else "-", num(c["entries"], 0), pct(c["fill_ratio"], 1)]
             for c in report["caches"]])]
    if report["pools"]:
        lines += ["", "Pools", table(
            ["pool", "active", "idle", "max", "utilisation", "waiting", "max wait", "wait p99", "timeouts/s"],
            [[p["pool"], num(p["active"], 0), num(p["idle"], 0), num(p["max"], 0), pct(p["utilisation"], 1),
              num(p["waiting"], 0), ms(p["max_wait_seconds"]), ms(p["wait_p99"]), num(p["timeout_rate"], 2)]
             for p in report["pools"]])]
    if report["queues"]:
        lines += ["", "Queues", table(
            ["queue", "depth", "consumer lag", "unacked"],
            [[q["queue"], num(q["depth"], 0), num(q["consumer_lag"], 0), num(q["unacknowledged"], 0)]
             for q in report["queues"]])]
    if report["sql"]:
        lines += ["", "SQL probes", table(
            ["query", "table", "plan", "slow runs", "errors"],
            [[s["query"], s["table"] or "-", "FULL SCAN" if s["full_scan"] else "index",
              num(s["slow_runs"], 0), num(s["errors"], 0)] for s in report["sql"]])]
    h = report["host"]
    if h["cpu_busy_ratio"] is not None or h["memory_used_ratio"] is not None or h["filesystems"]:
        lines += ["", "Host"]
        if h["cpu_busy_ratio"] is not None:
            extra = f", {num(h['cpus'], 0)} CPUs" if h["cpus"] else ""
            extra += f", load1 {num(h['load1'], 2)}" if h["load1"] is not None else ""
            lines.append(f"  CPU busy     {pct(h['cpu_busy_ratio'], 1)} ({h['cpu_window']}{extra})")
        if h["memory_used_ratio"] is not None:
            lines.append(f"  memory used  {pct(h['memory_used_ratio'], 1)} of "
                         f"{h['memory_total_bytes'] / 2**30:.1f} GiB")
        for d in h["filesystems"]:
            lines.append(f"  disk {d['mountpoint']:<8} {pct(d['used_ratio'], 1)} used, "
                         f"{d['avail_bytes'] / 2**30:.1f} GiB free")
    if report["targets_down"]:
        lines += ["", "Targets down: " + ", ".join(f"{t['collector']}/{t['target']}" for t in report["targets_down"])]
    return "\n".join(lines) + "\n"


# --- compare ---------------------------------------------------------------------------


def _delta(before: float | None, after: float | None) -> dict[str, float | None]:
    change = after - before if before is not None and after is not None else None
    ratio = change / before if change is not None and before else None
    return {"before": before, "after": after, "change": change, "change_ratio": ratio}


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Before/after deltas of two saved reports (matched by operation, cache, pool, query)."""
    def index(report: dict[str, Any], section: str, *keys: str) -> dict[tuple[str, ...], dict[str, Any]]:
        return {tuple(r[k] for k in keys): r for r in report.get(section, [])}

    out: dict[str, Any] = {
        "before": {"source": a.get("source"), "generated_at": a.get("generated_at")},
        "after": {"source": b.get("source"), "generated_at": b.get("generated_at")},
        "health": _delta(a["health"]["score"], b["health"]["score"]),
    }
    sections = (("operations", ("operation",), ("rate", "error_ratio", "p50", "p95", "p99", "mean")),
                ("caches", ("cache", "level"), ("hit_ratio", "lookup_rate")),
                ("pools", ("pool",), ("utilisation", "waiting", "wait_p99")),
                ("queues", ("queue",), ("depth", "consumer_lag")),
                ("sql", ("query", "table"), ("full_scan", "slow_runs")))
    for section, keys, fields in sections:
        ia, ib = index(a, section, *keys), index(b, section, *keys)
        rows = []
        for key in list(ia) + [k for k in ib if k not in ia]:
            ra, rb = ia.get(key, {}), ib.get(key, {})
            row: dict[str, Any] = dict(zip(keys, key, strict=True))
            for f in fields:
                va, vb = ra.get(f), rb.get(f)
                row[f] = _delta(float(va) if va is not None else None, float(vb) if vb is not None else None)
            rows.append(row)
        out[section] = rows
    ha, hb = a.get("host", {}), b.get("host", {})
    out["host"] = {k: _delta(ha.get(k), hb.get(k)) for k in ("cpu_busy_ratio", "memory_used_ratio")}
    return out


def render_compare(c: dict[str, Any]) -> str:
    def change(d: dict[str, Any], fmt: Any, points: bool | str = False) -> str:
        """`before → after (±x%)`; ratios and scores change in points, not in percent of themselves."""
        text = f"{fmt(d['before'])} → {fmt(d['after'])}"
        if points and d["change"] is not None:
            text += f" ({d['change'] * 100:+.1f} pp)" if points == "ratio" else f" ({d['change']:+.0f})"
        elif d["change_ratio"] is not None:
            r = d["change_ratio"] * 100
            text += f" ({r:+.1f}%)" if abs(r) >= 99.5 and r < 0 else f" ({r:+.0f}%)"
        return text

    lines = [f"Before: {c['before']['source']} at {c['before']['generated_at']}",
             f"After:  {c['after']['source']} at {c['after']['generated_at']}",
             f"Health: {change(c['health'], lambda v: '-' if v is None else str(int(v)), points=True)}"]
    if c["operations"]:
        lines += ["", "Operations", table(
            ["operation", "rate/s", "errors", "p50", "p95", "p99"],
            [[o["operation"], change(o["rate"], lambda v: num(v, 1)), change(o["error_ratio"], pct, "ratio"),
              change(o["p50"], ms), change(o["p95"], ms), change(o["p99"], ms)] for o in c["operations"]])]
    if c["sql"]:
        def plan(v: float | None) -> str:
            return "-" if v is None else ("FULL SCAN" if v else "index")
        lines += ["", "SQL probes", table(
            ["query", "table", "plan"],
            [[s["query"], s["table"] or "-", f"{plan(s['full_scan']['before'])} → {plan(s['full_scan']['after'])}"]
             for s in c["sql"]])]
    if c["caches"]:
        lines += ["", "Caches", table(
            ["cache", "level", "hit ratio", "lookups/s"],
            [[x["cache"], x["level"] or "-", change(x["hit_ratio"], lambda v: pct(v, 1), "ratio"),
              change(x["lookup_rate"], lambda v: num(v, 1))] for x in c["caches"]])]
    if c["pools"]:
        lines += ["", "Pools", table(
            ["pool", "utilisation", "waiting", "wait p99"],
            [[p["pool"], change(p["utilisation"], lambda v: pct(v, 1), "ratio"), change(p["waiting"], lambda v: num(v, 0)),
              change(p["wait_p99"], ms)] for p in c["pools"]])]
    if c["queues"]:
        lines += ["", "Queues", table(
            ["queue", "depth", "consumer lag"],
            [[q["queue"], change(q["depth"], lambda v: num(v, 0)), change(q["consumer_lag"], lambda v: num(v, 0))]
             for q in c["queues"]])]
    h = c["host"]
    lines += ["", "Host", f"  CPU busy     {change(h['cpu_busy_ratio'], lambda v: pct(v, 1), 'ratio')}",
              f"  memory used  {change(h['memory_used_ratio'], lambda v: pct(v, 1), 'ratio')}"]
    return "\n".join(lines) + "\n"


# --- command line ---------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="apm-exporter report",
        description="Performance report from a running daemon's /metrics or a Prometheus server: per operation "
                    "rate, error ratio and p50/p95/p99 (slowest first), caches, pools, queues, SQL plans, host, "
                    "and a 0-100 health score. `report --compare A.json B.json` prints before/after deltas.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:9725/metrics", help="the daemon's metrics URL")
    p.add_argument("--interval", type=float, default=10.0,
                   help="seconds between the two scrapes of --url that give rates (0: one scrape, totals)")
    p.add_argument("--prometheus", metavar="URL", help="read a Prometheus server's API instead of --url")
    p.add_argument("--window", type=duration, default=300.0, help="with --prometheus: the window (e.g. 5m)")
    p.add_argument("--selector", default="", help="with --prometheus: label matchers, e.g. 'instance=\"web-1:9725\"'")
    p.add_argument("--namespace", default="apm", help="metric namespace the daemon uses")
    p.add_argument("--objective", type=duration, default=0.5, help="p99 latency objective of the health score")
    p.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                   help="HTTP header for the source (e.g. Authorization), repeatable")
    p.add_argument("--insecure", action="store_true", help="do not verify the source's TLS certificate")
    p.add_argument("--json", action="store_true", help="print JSON (save it for --compare)")
    p.add_argument("--compare", nargs=2, metavar=("BEFORE.json", "AFTER.json"),
                   help="print the deltas between two saved --json reports (or /api/v1/status bodies)")
    p.add_argument("--html", metavar="FILE",
                   help="also write the report as a self-contained HTML page: the daemon's status page for --url "
                        "(its /api/v1/status), the window's figures for --prometheus, latency bars for --compare")
    return p


def _load_json(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ReportError(f"{path}: {err}") from None
    if not isinstance(data, dict) or "health" not in data or "operations" not in data:
        raise ReportError(f"{path}: not a report saved with `apm-exporter report --json`")
    return data


def from_status(metrics_url: str, headers: dict[str, str], insecure: bool, timeout: float = 10.0
                ) -> dict[str, Any] | None:
    """The daemon's own status model (GET /api/v1/status beside --url), or None where there is none
    (an older daemon, another exporter): the caller then shows the window it measured."""
    parts = urllib.parse.urlsplit(metrics_url)
    url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, STATUS_PATH, "", ""))
    try:
        data = json.loads(_fetch(url, {**headers, "Accept": "application/json"}, insecure, timeout))
    except (ReportError, ValueError):
        return None
    if not isinstance(data, dict) or "operations" not in data or "health" not in data:
        return None
    data["source"] = url
    return data


def _write(path: str, body: bytes) -> None:
    try:
        with open(path, "wb") as f:
            f.write(body)
    except OSError as err:
        raise ReportError(f"{path}: {err}") from None
    print(f"apm-exporter report: wrote {path}", file=sys.stderr)


def main(argv: list[str]) -> int:
    ns = parser().parse_args(argv)
    headers = {}
    for item in ns.header:
        name, sep, value = item.partition(":")
        if not sep:
            print(f"apm-exporter report: error: --header wants 'Name: value', got {item!r}", file=sys.stderr)
            return 2
        headers[name.strip()] = value.strip()
    if not 0 <= ns.interval <= 3600:
        print("apm-exporter report: error: --interval must be within 0..3600 seconds", file=sys.stderr)
        return 2
    try:
        if ns.compare:
            result = compare(_load_json(ns.compare[0]), _load_json(ns.compare[1]))
            text = render_compare(result)
            html = page.compare_page(result) if ns.html else b""
        else:
            if ns.prometheus:
                window = from_prometheus(ns.prometheus, ns.window, ns.namespace, ns.selector, headers, ns.insecure)
            else:
                window = from_metrics(ns.url, ns.interval, ns.namespace, headers, ns.insecure)
            result = build(window, Objectives(p99=ns.objective))
            text = render(result)
            status = from_status(ns.url, headers, ns.insecure) if ns.html and not ns.prometheus else None
            html = page.render(status or result) if ns.html else b""
        if ns.html:
            _write(ns.html, html)
    except ReportError as err:
        print(f"apm-exporter report: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    sys.stdout.write(json.dumps(result, indent=2) + "\n" if ns.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
