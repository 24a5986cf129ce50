#!/usr/bin/env python3
"""Generate the Grafana dashboards in grafana/dashboards/ from one description per panel.

    python3 grafana/generate.py            # rewrite grafana/dashboards/*.json
    python3 grafana/generate.py --check    # exit 1 if a committed file differs (tests run this)

Why code and not hand-kept JSON (docs/dashboards.md): six dashboards and ~90 panels share the
same datasource, template variables, label selectors, units and layout. Here each panel is
one call that states what differs (title, description, queries, unit, thresholds); the
boilerplate Grafana needs is written once. Grafana's own JSON is what is committed, so users
import or provision it without running anything; tests check the two never drift apart.

Standard library only, so it runs anywhere the repository is checked out.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
SCHEMA_VERSION = 39
DS = {"type": "prometheus", "uid": "${datasource}"}

# Selectors every query starts from: the dashboard's job and instance, plus its own label.
BASE = 'job=~"$job", instance=~"$instance"'


def sel(*extra: str) -> str:
    """A label selector body: job and instance variables plus any extra matchers."""
    return "{" + ", ".join([BASE, *extra]) + "}"


RI = "$__rate_interval"  # Grafana picks it from the scrape interval (at least 4 scrapes)


# --- histograms: classic buckets, or the native series where a family is native -----------------
# A Prometheus with native histograms enabled stores a native or both-way family as one native
# series (no _bucket/_count/_sum); without, the classic series. One side of each `or` is empty.
def quantile_of(q: str, by: str, le_rate: str, native: str) -> str:
    """histogram_quantile over recorded classic bucket rates, or over the native series' rate."""
    return (f"histogram_quantile({q}, sum by ({by}, le) ({le_rate})) or "
            f"histogram_quantile({q}, sum by ({by}) (rate({native}[5m])))")


def count_rate(by: str, histogram: str, selector: str, window: str = RI) -> str:
    """Observations per second, from `_count` or from the native series."""
    return (f"sum by ({by}) (rate({histogram}_count{selector}[{window}])) or "
            f"sum by ({by}) (histogram_count(rate({histogram}{selector}[{window}])))")


def mean_of(by: str, histogram: str, selector: str, window: str = RI) -> str:
    """Mean observation, `_sum` over `_count`, or the native series' histogram_sum over histogram_count."""
    return (f"sum by ({by}) (rate({histogram}_sum{selector}[{window}])) / "
            f"sum by ({by}) (rate({histogram}_count{selector}[{window}])) or "
            f"sum by ({by}) (histogram_sum(rate({histogram}{selector}[{window}]))) / "
            f"sum by ({by}) (histogram_count(rate({histogram}{selector}[{window}])))")


# --- thresholds (Grafana steps: the first has value null) ------------------------------------

def steps(*pairs: tuple[str, float | None]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in pairs]}


NEUTRAL = steps(("blue", None))
HIGH_BAD = {  # (yellow from, red from)
    "error_ratio": (0.01, 0.05),
    "latency": (0.25, 0.5),
    "utilisation": (0.7, 0.9),
    "memory": (0.8, 0.95),
    "disk": (0.85, 0.95),
}


def high_bad(yellow: float, red: float) -> dict[str, Any]:
    return steps(("green", None), ("yellow", yellow), ("red", red))


def low_bad(red_below: float, yellow_below: float) -> dict[str, Any]:
    return steps(("red", None), ("yellow", red_below), ("green", yellow_below))


def any_bad(red_from: float = 1) -> dict[str, Any]:
    """Green at 0, red from the first occurrence (errors, drops, timeouts, waiters)."""
    return steps(("green", None), ("red", red_from))


# --- panels ----------------------------------------------------------------------------------

@dataclass
class Q:
    """One query of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass
class Panel:
    kind: str  # timeseries | stat | table | row
    title: str
    description: str = ""
    queries: list[Q] = field(default_factory=list)
    unit: str = "short"
    thresholds: dict[str, Any] = field(default_factory=lambda: NEUTRAL)
    w: int = 12
    h: int = 8
    min: float | None = None
    max: float | None = None
    stack: bool = False
    mappings: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    sort_by: str | None = None


def ts(title: str, description: str, *queries: Q, unit: str = "short", **kw: Any) -> Panel:
    kw.setdefault("min", 0)
    return Panel("timeseries", title, description, list(queries), unit, **kw)


def stat(title: str, description: str, query: Q, unit: str = "short", **kw: Any) -> Panel:
    kw.setdefault("w", 6)
    kw.setdefault("h", 4)
    return Panel("stat", title, description, [query], unit, **kw)


def table(title: str, description: str, *queries: Q, unit: str = "short", **kw: Any) -> Panel:
    for q in queries:
        q.instant = True
    return Panel("table", title, description, list(queries), unit, **kw)


def row(title: str) -> Panel:
    return Panel("row", title, w=24, h=1)


def column_units(**units: str) -> list[dict[str, Any]]:
    """Per-column units of a merged table: Value #A -> unit."""
    return [{"matcher": {"id": "byName", "options": f"Value #{ref}"},
             "properties": [{"id": "unit", "value": unit}]} for ref, unit in units.items()]


def column_names(**names: str) -> list[dict[str, Any]]:
    return [{"matcher": {"id": "byName", "options": f"Value #{ref}"},
             "properties": [{"id": "displayName", "value": name}]} for ref, name in names.items()]


UP_DOWN = [{"type": "value", "options": {
    "0": {"text": "DOWN", "color": "red", "index": 0},
    "1": {"text": "UP", "color": "green", "index": 1}}}]
OK_FAILED = [{"type": "value", "options": {
    "0": {"text": "FAILED", "color": "red", "index": 0},
    "1": {"text": "OK", "color": "green", "index": 1}}}]


def _target(q: Q, ref: str, table_format: bool) -> dict[str, Any]:
    t: dict[str, Any] = {"refId": ref, "datasource": DS, "editorMode": "code", "expr": q.expr,
                         "legendFormat": q.legend or "__auto", "range": not q.instant, "instant": q.instant}
    if table_format:
        t["format"] = "table"
    return t


def _render(p: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    grid = {"h": p.h, "w": p.w, "x": x, "y": y}
    if p.kind == "row":
        return {"id": pid, "type": "row", "title": p.title, "collapsed": False, "gridPos": grid, "panels": []}
    defaults: dict[str, Any] = {"unit": p.unit, "thresholds": p.thresholds, "mappings": p.mappings,
                                "color": {"mode": "palette-classic" if p.kind == "timeseries" else "thresholds"}}
    if p.min is not None:
        defaults["min"] = p.min
    if p.max is not None:
        defaults["max"] = p.max
    out: dict[str, Any] = {
        "id": pid, "type": p.kind, "title": p.title, "description": p.description, "datasource": DS,
        "gridPos": grid,
        "targets": [_target(q, chr(ord("A") + i), p.kind == "table") for i, q in enumerate(p.queries)],
    }
    if p.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
            "spanNulls": False, "stacking": {"mode": "normal" if p.stack else "none", "group": "A"},
            "thresholdsStyle": {"mode": "off" if p.thresholds is NEUTRAL else "dashed"},
        }
        out["options"] = {"legend": {"displayMode": "table", "placement": "bottom", "showLegend": True,
                                     "calcs": ["mean", "max", "lastNotNull"]},
                          "tooltip": {"mode": "multi", "sort": "desc"}}
    elif p.kind == "stat":
        out["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                          "colorMode": "background", "graphMode": "area", "textMode": "auto",
                          "justifyMode": "auto", "orientation": "auto"}
    else:
        out["options"] = {"showHeader": True, "cellHeight": "sm",
                          "sortBy": [{"displayName": p.sort_by, "desc": True}] if p.sort_by else []}
        defaults["custom"] = {"align": "auto", "cellOptions": {"type": "color-text"}}
        out["transformations"] = [
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": True, "__name__": True}}},
        ]
    overrides = p.overrides
    if p.kind == "table" and len(p.queries) == 1:  # one query: Grafana names its column "Value"
        overrides = json.loads(json.dumps(overrides).replace('"Value #A"', '"Value"'))
    out["fieldConfig"] = {"defaults": defaults, "overrides": overrides}
    return out


# --- template variables ------------------------------------------------------------------------

def _datasource_var() -> dict[str, Any]:
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "refresh": 1, "regex": "", "includeAll": False, "multi": False}


def _query_var(name: str, label: str, query: str, all_value: str | None) -> dict[str, Any]:
    v: dict[str, Any] = {
        "name": name, "label": label, "type": "query", "datasource": DS,
        # The plain-string query form: every Grafana version reads it (newer ones convert it).
        "definition": query, "query": query,
        "refresh": 2, "sort": 1, "multi": True, "includeAll": True, "current": {}, "hide": 0, "regex": "",
    }
    if all_value is not None:
        v["allValue"] = all_value
    return v


def variables(label: tuple[str, str, str] | None = None) -> list[dict[str, Any]]:
    """datasource, job, instance (from the exporter's build info), then one label of this dashboard.

    job and instance enumerate their values for "All" (so `up` is limited to exporters); a label
    variable uses `.*` for "All" (operations and caches can be many, and the label may be empty).
    """
    out = [_datasource_var(),
           _query_var("job", "Job", "label_values(apm_exporter_build_info, job)", None),
           _query_var("instance", "Instance", 'label_values(apm_exporter_build_info{job=~"$job"}, instance)', None)]
    if label:
        name, title, metric = label
        out.append(_query_var(name, title, f'label_values({metric}{sel()}, {name})', ".*"))
    return out


# --- dashboards ----------------------------------------------------------------------------------

@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    panels: list[Panel]
    label: tuple[str, str, str] | None = None

    def render(self) -> dict[str, Any]:
        rendered, x, y, row_h = [], 0, 0, 0
        for pid, p in enumerate(self.panels, start=1):
            if p.kind == "row" or x + p.w > 24:
                x, y, row_h = 0, y + row_h, 0
            rendered.append(_render(p, pid, x, y))
            x, row_h = x + p.w, max(row_h, p.h)
            if p.kind == "row":
                x, y, row_h = 0, y + p.h, 0
        return {
            "uid": self.uid, "title": self.title, "description": self.description,
            "tags": ["apm", "apm-exporter"], "editable": True, "graphTooltip": 1,
            "schemaVersion": SCHEMA_VERSION, "version": 1, "refresh": "30s",
            "time": {"from": "now-1h", "to": "now"}, "timezone": "browser", "fiscalYearStartMonth": 0,
            "liveNow": False, "weekStart": "",
            "timepicker": {}, "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
                "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
                "type": "dashboard"}]},
            "links": [{"title": "APM dashboards", "type": "dashboards", "tags": ["apm"], "asDropdown": True,
                       "includeVars": True, "keepTime": True, "icon": "external link", "targetBlank": False,
                       "tooltip": "", "url": ""}],
            "templating": {"list": variables(self.label)},
            "panels": rendered,
        }


def overview() -> Dashboard:
    s = sel('operation=~"$operation"')
    p99 = sel('operation=~"$operation"', 'quantile="0.99"')
    ops = f"instance_operation:apm_operations:rate5m{s}"
    errs = f"instance_operation:apm_operation_errors:rate5m{s}"
    le = f"instance_operation_le:apm_operation_duration_seconds_bucket:rate5m{s}"
    native = f"apm_operation_duration_seconds{s}"

    def quantile(q: str) -> Q:
        return Q(quantile_of(q, "operation", le, native), f"{{{{operation}}}} p{q[2:] or '100'}")

    y_lat, r_lat = HIGH_BAD["latency"]
    y_err, r_err = HIGH_BAD["error_ratio"]
    return Dashboard("apm-overview", "APM / Overview",
                     "Golden signals per operation: rate, errors, latency quantiles, slowest operations.", [
        row("Golden signals (selected instances together)"),
        stat("Request rate", "Operations per second over the last 5 minutes, every selected operation and "
             "instance together (recording rule instance_operation:apm_operations:rate5m).",
             Q(f"sum({ops})"), "reqps"),
        stat("Error ratio", "Share of operations whose outcome is an error (anything but ok, success or hit) "
             "over the last 5 minutes. Yellow from 1%, red from 5% (the ApmOperationErrorRatioHigh threshold).",
             Q(f"sum({errs}) / sum({ops})"), "percentunit", thresholds=high_bad(y_err, r_err)),
        stat("Slowest p99", "The highest p99 latency of any selected operation over the last 5 minutes. "
             "Red from 0.5s, the default latency objective (ApmOperationLatencyHigh).",
             Q(f"max({quantile_of('0.99', 'operation', le, native)})"), "s",
             thresholds=high_bad(y_lat, r_lat)),
        stat("Host health (worst instance)", "0-100 host score of the worst selected instance: 100 minus "
             "penalties for CPU, memory and disk over thresholds (recording rule instance:apm_health:score).",
             Q(f"min(instance:apm_health:score{sel()})"), "none", min=0, max=100, thresholds=low_bad(50, 80)),
        row("Per operation"),
        ts("Request rate by operation", "Operations per second, by operation (5-minute rate).",
           Q(f"sum by (operation) ({ops})", "{{operation}}"), unit="reqps"),
        ts("Error ratio by operation", "Share of each operation's requests that ended in an error outcome "
           "(5-minute window). Dashed lines: 1% and 5%.",
           Q(f"sum by (operation) ({errs}) / sum by (operation) ({ops})", "{{operation}}"),
           unit="percentunit", thresholds=high_bad(y_err, r_err)),
        ts("Latency p50 / p95 / p99 by operation", "Quantiles from the operation histograms of every selected "
           "instance added together (exact across instances; 5-minute window). Dashed: 0.25s and the 0.5s "
           "default objective.", quantile("0.5"), quantile("0.95"), quantile("0.99"),
           unit="s", thresholds=high_bad(y_lat, r_lat)),
        ts("Outcomes", "Operations per second by operation and outcome, at the dashboard's resolution "
           "($__rate_interval) rather than the 5-minute recording window.",
           Q(count_rate("operation, outcome", "apm_operation_duration_seconds", s),
             "{{operation}} {{outcome}}"), unit="reqps", stack=True),
        table("Slowest operations", "Operations by p99 latency over the last 5 minutes, slowest first, with "
              "their rate, error ratio and p99 objective (job_operation:apm_operation_latency_objective_seconds:p99).",
              Q(f"topk(20, {quantile_of('0.99', 'operation', le, native)})"),
              Q(f"sum by (operation) ({ops})"),
              Q(f"sum by (operation) ({errs}) / sum by (operation) ({ops})"),
              Q('max by (operation) (job_operation:apm_operation_latency_objective_seconds:p99'
                '{job=~"$job", operation=~"$operation"})'),
              unit="s", thresholds=high_bad(y_lat, r_lat), sort_by="p99",
              overrides=column_units(A="s", B="reqps", C="percentunit", D="s")
              + column_names(A="p99", B="rate", C="error ratio", D="p99 objective")),
        ts("Mean latency by operation", "Sum of durations over count of operations ($__rate_interval): the "
           "mean hides tail latency; compare it with p99 above.",
           Q(mean_of("operation", "apm_operation_duration_seconds", s), "{{operation}}"),
           unit="s", thresholds=high_bad(y_lat, r_lat)),
        row("Per instance (find the one bad instance)"),
        ts("Error ratio by instance", "Each instance's error ratio per operation (5-minute window): one "
           "instance far above the others points at that host or pod, not the code.",
           Q(f"instance_operation:apm_operation_error_ratio:rate5m{s}", "{{instance}} {{operation}}"),
           unit="percentunit", thresholds=high_bad(y_err, r_err)),
        ts("p99 by instance", "Each instance's p99 latency per operation (5-minute window; recording rule "
           "instance_operation_quantile:apm_operation_duration_seconds:histogram_quantile5m).",
           Q(f"instance_operation_quantile:apm_operation_duration_seconds:histogram_quantile5m{p99}",
             "{{instance}} {{operation}}"),
           unit="s", thresholds=high_bad(y_lat, r_lat)),
        ts("Host health by instance", "0-100 health score per instance from CPU busy, memory used and the "
           "fullest filesystem (docs/alerts.md, 'Health score'). Below 80 yellow, below 50 red.",
           Q(f"instance:apm_health:score{sel()}", "{{instance}}"), unit="none", max=100,
           thresholds=low_bad(50, 80)),
    ], ("operation", "Operation", "instance_operation:apm_operations:rate5m"))


def caches() -> Dashboard:
    s = sel('cache=~"$cache"')
    p99 = sel('quantile="0.99"')
    hits = f"instance_cache_level:apm_cache_hits:rate5m{s}"
    reqs = f"instance_cache_level:apm_cache_requests:rate5m{s}"
    return Dashboard("apm-caches", "APM / Caches",
                     "Hit ratio per cache and level, evictions, fill against capacity, promotions.", [
        row("Effectiveness"),
        ts("Hit ratio by cache and level", "Hits over lookups in the last 5 minutes (every selected instance "
           "together). Red under 50%, yellow under 80%. A sudden fall is ApmCacheHitRatioCollapse.",
           Q(f"sum by (cache, level) ({hits}) / sum by (cache, level) ({reqs})", "{{cache}} {{level}}"),
           unit="percentunit", max=1, thresholds=low_bad(0.5, 0.8)),
        ts("Hit ratio by instance", "Each instance's hit ratio per cache and level (5-minute window): an "
           "instance far below the others has a cold or misconfigured cache.",
           Q(f"instance_cache_level:apm_cache_hit_ratio:rate5m{s}", "{{instance}} {{cache}} {{level}}"),
           unit="percentunit", max=1, thresholds=low_bad(0.5, 0.8)),
        ts("Lookups by result", "Cache lookups per second by hit or miss.",
           Q(f"sum by (cache, level, result) (rate(apm_cache_requests_total{s}[{RI}]))",
             "{{cache}} {{level}} {{result}}"), unit="ops", stack=True),
        ts("Evictions", "Entries evicted per second to make room: a cache evicting steadily is too small "
           "for its working set.",
           Q(f"sum by (cache, level) (rate(apm_cache_evictions_total{s}[{RI}]))", "{{cache}} {{level}}"),
           unit="ops"),
        ts("Expirations", "Entries removed per second because their time to live passed (Redis, memcached).",
           Q(f"sum by (cache, level) (rate(apm_cache_expirations_total{s}[{RI}]))", "{{cache}} {{level}}"),
           unit="ops"),
        row("Size"),
        ts("Fill (entries / capacity)", "Entries held over the most the cache holds. A full LRU cache is "
           "normal; full and evicting with a low hit ratio means it is too small.",
           Q(f"sum by (cache, level) (apm_cache_entries{s}) / "
             f"sum by (cache, level) (apm_cache_capacity_entries{s} > 0)", "{{cache}} {{level}}"),
           unit="percentunit", max=1, thresholds=high_bad(0.9, 0.99)),
        ts("Entries and capacity", "Entries held and the capacity in entries, per cache and level.",
           Q(f"sum by (cache, level) (apm_cache_entries{s})", "{{cache}} {{level}} entries"),
           Q(f"sum by (cache, level) (apm_cache_capacity_entries{s})", "{{cache}} {{level}} capacity")),
        ts("Memory against limit", "Memory a cache server uses for data, and its limit (Redis maxmemory, "
           "memcached -m; a Redis without maxmemory shows no limit).",
           Q(f"sum by (cache, level) (apm_cache_memory_bytes{s})", "{{cache}} {{level}} used"),
           Q(f"sum by (cache, level) (apm_cache_memory_limit_bytes{s} > 0)", "{{cache}} {{level}} limit"),
           unit="bytes"),
        ts("Promotions", "Entries promoted per second into a level from a slower one (multi-level caches): "
           "high promotions with a low hit ratio on the fast level mean it is too small.",
           Q(f"sum by (cache, level) (rate(apm_cache_promotions_total{s}[{RI}]))", "{{cache}} {{level}}"),
           unit="ops"),
        ts("Client connections", "Connections open to each cache server (Redis, memcached).",
           Q(f"sum by (cache) (apm_cache_clients{s})", "{{cache}}")),
        table("Caches now", "Per cache and level over the last 5 minutes: hit ratio, lookups per second and "
              "fill against capacity.",
              Q(f"sum by (cache, level) ({hits}) / sum by (cache, level) ({reqs})"),
              Q(f"sum by (cache, level) ({reqs})"),
              Q(f"sum by (cache, level) (apm_cache_entries{s}) / "
                f"sum by (cache, level) (apm_cache_capacity_entries{s} > 0)"),
              unit="percentunit", thresholds=low_bad(0.5, 0.8), sort_by="lookups/s",
              overrides=column_units(A="percentunit", B="ops", C="percentunit")
              + column_names(A="hit ratio", B="lookups/s", C="fill")),
        row("Redis"),
        ts("Memory used / limit", "Memory over the server's limit (Redis maxmemory, memcached -m). From 90% for "
           "10 minutes: ApmCacheMemoryNearLimit (next: evictions, or refused writes under noeviction).",
           Q(f"max by (cache, level) (instance_cache_level:apm_cache_memory_used:ratio{s})", "{{cache}} {{level}}"),
           unit="percentunit", max=1, thresholds=high_bad(0.8, 0.9)),
        ts("Redis command latency p99", "The server's own 99th percentile per command (Redis 7 latencystats, "
           "since the last stats reset), the ten slowest.",
           Q(f'topk(10, max by (target, command) (apm_redis_command_duration_seconds{p99}))',
             "{{target}} {{command}}"), unit="s", thresholds=high_bad(0.001, 0.01)),
        ts("Redis mean command time", "Server time per call of each command over the window (commandstats), "
           "the ten slowest.",
           Q(f"topk(10, sum by (target, command) (rate(apm_redis_command_duration_seconds_sum{sel()}[{RI}])) / "
             f"sum by (target, command) (rate(apm_redis_command_duration_seconds_count{sel()}[{RI}]) > 0))",
             "{{target}} {{command}}"), unit="s"),
        ts("Redis commands per second", "Calls per second of the ten busiest commands.",
           Q(f"topk(10, sum by (target, command) (rate(apm_redis_command_duration_seconds_count{sel()}[{RI}])))",
             "{{target}} {{command}}"), unit="ops"),
        ts("Redis rejected connections", "Connections refused per second at maxclients (ApmConnectionsRejected), "
           "and clients blocked in BLPOP, XREAD BLOCK or WAIT.",
           Q(f"sum by (target) (instance_target:apm_redis_rejected_connections:rate5m{sel()})", "{{target}} rejected/s"),
           Q(f"sum by (target) (apm_redis_blocked_clients{sel()})", "{{target}} blocked"),
           thresholds=any_bad()),
        ts("Redis keys per database", "Keys and keys with a time to live, per database.",
           Q(f"sum by (target, db) (apm_redis_db_keys{sel()})", "{{target}} db{{db}} keys"),
           Q(f"sum by (target, db) (apm_redis_db_expiring_keys{sel()})", "{{target}} db{{db}} expiring")),
    ], ("cache", "Cache", "apm_cache_requests_total"))


def pools() -> Dashboard:
    s = sel('pool=~"$pool"')
    per_db, waiting, pg_up = sel('cache=~".+/.+"'), sel('state="waiting"'), sel('collector="postgres"')
    y_u, r_u = HIGH_BAD["utilisation"]
    return Dashboard("apm-pools", "APM / Pools",
                     "Connection pools: utilisation against max, clients waiting, wait time, timeouts; "
                     "PgBouncer and PostgreSQL.", [
        row("Connection pools"),
        ts("Utilisation (active / max)", "Active connections over the pool's maximum, worst instance per "
           "pool. Red from 90% (ApmPoolSaturated after 10 minutes).",
           Q(f"max by (pool) (instance_pool:apm_pool_utilisation:ratio{s})", "{{pool}}"),
           unit="percentunit", max=1, thresholds=high_bad(y_u, r_u)),
        ts("Connections against max", "Connections by state (active, idle) and the most the pool may open.",
           Q(f"sum by (pool, state) (apm_pool_connections{s})", "{{pool}} {{state}}"),
           Q(f"sum by (pool) (apm_pool_max_connections{s})", "{{pool}} max")),
        ts("Requests waiting for a connection", "Requests queued for a connection now. Any sustained value "
           "adds that wait to every request's latency (ApmPoolClientsWaiting after 5 minutes).",
           Q(f"sum by (pool) (instance_pool:apm_pool_pending_requests:sum{s})", "{{pool}}"),
           thresholds=any_bad()),
        ts("Wait time p95", "95th percentile of the time spent waiting for a connection (5-minute window, "
           "every selected instance together).",
           Q(quantile_of("0.95", "pool", f"instance_pool_le:apm_pool_wait_duration_seconds_bucket:rate5m{s}",
                         f"apm_pool_wait_duration_seconds{s}"), "{{pool}}"),
           unit="s", thresholds=high_bad(0.1, 1)),
        ts("Wait time p95 by instance", "Each instance's 95th percentile wait for a connection (5-minute "
           "window).",
           Q(f"instance_pool_quantile:apm_pool_wait_duration_seconds:histogram_quantile5m{s}", "{{instance}} {{pool}}"),
           unit="s", thresholds=high_bad(0.1, 1)),
        ts("Timeouts", "Requests per second that gave up waiting for a connection; each is a failed request "
           "(ApmPoolTimeouts).",
           Q(f"sum by (pool) (instance_pool:apm_pool_timeouts:rate5m{s})", "{{pool}}"),
           unit="reqps", thresholds=any_bad(0.001)),
        ts("Longest current wait", "How long the oldest waiting client has waited (PgBouncer maxwait).",
           Q(f"max by (pool) (apm_pool_max_wait_seconds{s})", "{{pool}}"), unit="s",
           thresholds=high_bad(0.1, 1)),
        row("PgBouncer"),
        ts("Pooler clients by state", "Client connections to PgBouncer: active (paired with a server) or "
           "waiting for one.",
           Q(f"sum by (pool, state) (apm_pool_clients{s})", "{{pool}} {{state}}")),
        ts("Queries through the pooler", "Queries per second PgBouncer passed to its servers.",
           Q(f"sum by (pool) (rate(apm_pool_queries_total{s}[{RI}]))", "{{pool}}"), unit="reqps"),
        ts("Mean query time", "Server time per query passed through PgBouncer.",
           Q(f"sum by (pool) (rate(apm_pool_query_seconds_total{s}[{RI}])) / "
             f"sum by (pool) (rate(apm_pool_queries_total{s}[{RI}]))", "{{pool}}"), unit="s",
           thresholds=high_bad(0.1, 0.5)),
        ts("Clients waiting on average", "Seconds of client waiting per second: the mean number of clients "
           "waiting for a server connection.",
           Q(f"sum by (pool) (rate(apm_pool_wait_seconds_total{s}[{RI}]))", "{{pool}}"),
           thresholds=any_bad()),
        ts("PgBouncer clients against max_client_conn", "Client connections over max_client_conn, beyond which "
           "PgBouncer refuses clients (ApmPoolerClientsNearLimit from 90%).",
           Q(f"max by (target) (instance_target:apm_pgbouncer_client_connections:ratio{sel()})", "{{target}}"),
           unit="percentunit", max=1, thresholds=high_bad(0.8, 0.9)),
        row("Databases"),
        ts("Replication lag", "How far replay is behind the primary, in seconds (PostgreSQL: a replica's own "
           "view or the primary's of each replica). Over 30 s for 5 minutes: ApmReplicationLagHigh.",
           Q(f"max by (target) (instance_target:apm_replication_lag_seconds:max{sel()})", "{{target}}"),
           unit="s", thresholds=high_bad(10, 30)),
        ts("Replication lag (bytes)", "WAL not yet replayed (PostgreSQL) or replication stream not yet "
           "acknowledged (Redis replicas of a primary).",
           Q(f"max by (target) (instance_target:apm_replication_lag_bytes:max{sel()})", "{{target}}"),
           unit="bytes"),
        ts("Cache hit ratio per database", "Shared-buffer hits over reads per PostgreSQL database "
           "(cache=<target>/<database>): a database that falls far below the others reads from disk.",
           Q(f'sum by (cache) (instance_cache_level:apm_cache_hits:rate5m{per_db}) / '
             f'sum by (cache) (instance_cache_level:apm_cache_requests:rate5m{per_db} > 0)',
             "{{cache}}"), unit="percentunit", max=1, thresholds=low_bad(0.9, 0.99)),
        ts("Transactions per database", "Commits and rollbacks per second in each database.",
           Q(f"sum by (database, outcome) (rate(apm_postgres_transactions_total{sel()}[{RI}]))",
             "{{database}} {{outcome}}"), unit="ops"),
        ts("Oldest transaction", "Age of the oldest open transaction and of the longest idle-in-transaction "
           "session: both hold back vacuum and keep locks.",
           Q(f"max by (target) (apm_postgres_oldest_transaction_age_seconds{sel()})", "{{target}} transaction"),
           Q(f"max by (target) (apm_postgres_oldest_idle_in_transaction_seconds{sel()})", "{{target}} idle in tx"),
           unit="s", thresholds=high_bad(60, 600)),
        ts("Locks waiting", "Locks waited for, by mode (granted ones are normal).",
           Q(f'sum by (target, mode) (apm_postgres_locks{waiting}) or '
             f"sum by (target) (0 * apm_up{pg_up})", "{{target}} {{mode}}"),
           thresholds=any_bad()),
        table("Top statements (PostgreSQL)", "pg_stat_statements' top statements by database time per second, "
              "with calls per second and mean time per call.",
              Q(f"topk(10, sum by (target, database, query) (rate(apm_postgres_statement_seconds_total{sel()}[{RI}])))"),
              Q(f"sum by (target, database, query) (rate(apm_postgres_statement_calls_total{sel()}[{RI}]))"),
              Q(f"max by (target, database, query) (apm_postgres_statement_mean_seconds{sel()})"),
              unit="s", sort_by="time/s", w=24,
              overrides=column_units(A="s", B="reqps", C="s")
              + column_names(A="time/s", B="calls/s", C="mean")),
        ts("Database time by statement", "Seconds of database time per second spent in each of the five "
           "busiest statements.",
           Q(f"topk(5, sum by (query) (rate(apm_postgres_statement_seconds_total{sel()}[{RI}])))", "{{query}}"),
           unit="s"),
        ts("SQL probe rows", "Rows each SQL probe query returned on its last successful run.",
           Q(f"max by (query) (apm_sql_query_rows{sel()})", "{{query}}")),
        ts("SQL probe errors and slow runs", "Runs per second of each SQL probe query that failed or took "
           "longer than its slow_threshold.",
           Q(f"sum by (query) (rate(apm_sql_query_errors_total{sel()}[{RI}]))", "{{query}} errors"),
           Q(f"sum by (query) (rate(apm_sql_slow_queries_total{sel()}[{RI}]))", "{{query}} slow"),
           unit="ops", thresholds=any_bad(0.001)),
        table("Query plans", "Per SQL probe query and table: FULL SCAN when the plan reads the whole table "
              "without an index (explain: true).",
              Q(f"max by (query, table) (apm_sql_query_full_scan{sel()})"),
              mappings=[{"type": "value", "options": {
                  "0": {"text": "index", "color": "green", "index": 0},
                  "1": {"text": "FULL SCAN", "color": "orange", "index": 1}}}],
              thresholds=steps(("green", None), ("orange", 1)),
              overrides=column_names(A="plan")),
    ], ("pool", "Pool", "apm_pool_connections"))


def queues() -> Dashboard:
    s = sel('queue=~"$queue"')
    size = f"instance_queue_le:apm_batch_size_bucket:rate5m{s}"
    dur = f"instance_queue_le:apm_batch_duration_seconds_bucket:rate5m{s}"
    size_native, dur_native = f"apm_batch_size{s}", f"apm_batch_duration_seconds{s}"
    items = "suffix: items/s"
    return Dashboard("apm-queues", "APM / Queues & batches",
                     "Queue depth, growth, time to drain; batch size and duration.", [
        row("Backlog"),
        ts("Depth", "Items waiting in each queue now.",
           Q(f"sum by (queue) (apm_queue_depth{s})", "{{queue}}")),
        ts("Growth rate", "Change of depth per second over 5 minutes (least squares): above 0 work arrives "
           "faster than it is processed (ApmQueueBacklogGrowing after 15 minutes).",
           Q(f"sum by (queue) (instance_queue:apm_queue_depth:deriv5m{s})", "{{queue}}"), unit=items,
           min=None, thresholds=steps(("green", None), ("yellow", 0.001))),
        ts("Time to drain", "Depth over the processing rate: how long the backlog lasts if nothing new "
           "arrives. Worst instance; absent while nothing processes the queue.",
           Q(f"max by (queue) (instance_queue:apm_queue_drain_seconds:ratio{s})", "{{queue}}"),
           unit="s", thresholds=high_bad(300, 900)),
        ts("Items processed by outcome", "Items per second that batches processed, by outcome.",
           Q(f"sum by (queue, outcome) (rate(apm_batch_items_total{s}[{RI}]))", "{{queue}} {{outcome}}"),
           unit=items, stack=True),
        row("Batches"),
        ts("Batch size p50 / p95", "Items per batch (5-minute window): batches that stay small under load "
           "mean the worker is not keeping up with its batching window.",
           Q(quantile_of("0.5", "queue", size, size_native), "{{queue}} p50"),
           Q(quantile_of("0.95", "queue", size, size_native), "{{queue}} p95")),
        ts("Batch duration p50 / p95 / p99", "Time to process one batch (5-minute window).",
           Q(quantile_of("0.5", "queue", dur, dur_native), "{{queue}} p50"),
           Q(quantile_of("0.95", "queue", dur, dur_native), "{{queue}} p95"),
           Q(quantile_of("0.99", "queue", dur, dur_native), "{{queue}} p99"),
           unit="s", thresholds=high_bad(1, 5)),
        ts("Batches per second", "Batches processed per second.",
           Q(count_rate("queue", "apm_batch_duration_seconds", s), "{{queue}}"), unit="ops"),
        ts("Mean batch size", "Items per batch on average ($__rate_interval).",
           Q(mean_of("queue", "apm_batch_size", s), "{{queue}}")),
        row("Streams (Redis consumer groups)"),
        ts("Consumer group lag", "Stream entries not yet delivered to each consumer group.",
           Q(f"max by (queue, group) (apm_queue_consumer_lag{s})", "{{queue}} {{group}}"),
           thresholds=high_bad(1000, 10000)),
        ts("Delivered, not acknowledged", "Entries a consumer group received but has not acknowledged: "
           "growing means consumers fail or die mid-message.",
           Q(f"max by (queue, group) (apm_queue_pending{s})", "{{queue}} {{group}}"),
           thresholds=high_bad(100, 1000)),
    ], ("queue", "Queue", "apm_queue_depth"))


def host() -> Dashboard:
    h = sel()
    g = sel('group=~"$group"')
    busy = sel('mode!="idle"')
    not_lo = sel('device!="lo"')
    y_m, r_m = HIGH_BAD["memory"]
    y_d, r_d = HIGH_BAD["disk"]
    y_u, r_u = HIGH_BAD["utilisation"]
    return Dashboard("apm-host", "APM / Host, container & processes",
                     "CPU, memory, disk, network and fds of the host; cgroup limits and throttling; "
                     "the app's process groups.", [
        row("Host"),
        ts("CPU busy", "Share of CPU time not idle or waiting for I/O (5-minute rate). Yellow from 70%, red "
           "from 90% (the health score's thresholds).",
           Q(f"instance:apm_host_cpu_busy:ratio_rate5m{h}", "{{instance}}"), unit="percentunit", max=1,
           thresholds=high_bad(y_u, r_u)),
        ts("CPU by mode", "CPU cores in use by mode, all CPUs together.",
           Q(f"sum by (instance, mode) (rate(apm_host_cpu_seconds_total{busy}[{RI}]))",
             "{{instance}} {{mode}}"), stack=True),
        ts("Load per CPU", "1-minute load average over logical CPUs: above 1 threads wait for a CPU.",
           Q(f"apm_host_load1{h} / on (job, instance) apm_host_cpus{h}", "{{instance}}"),
           thresholds=high_bad(1, 2)),
        ts("Memory used", "1 - MemAvailable / MemTotal. Yellow from 80%, red from 95%.",
           Q(f"instance:apm_host_memory_used:ratio{h}", "{{instance}}"), unit="percentunit", max=1,
           thresholds=high_bad(y_m, r_m)),
        ts("Memory breakdown", "Used (total minus available), page cache, buffers, free, and swap in use.",
           Q(f"sum by (instance) (apm_host_memory_used_bytes{h})", "{{instance}} used"),
           Q(f"sum by (instance) (apm_host_memory_cached_bytes{h})", "{{instance}} cached"),
           Q(f"sum by (instance) (apm_host_memory_buffers_bytes{h})", "{{instance}} buffers"),
           Q(f"sum by (instance) (apm_host_memory_free_bytes{h})", "{{instance}} free"),
           Q(f"sum by (instance) (apm_host_swap_used_bytes{h})", "{{instance}} swap used"), unit="bytes"),
        ts("Filesystem used", "Share of each filesystem not available to non-root users. Yellow from 85%, "
           "red from 95%.",
           Q(f"1 - apm_host_filesystem_avail_bytes{h} / (apm_host_filesystem_size_bytes{h} > 0)",
             "{{instance}} {{mountpoint}}"), unit="percentunit", max=1, thresholds=high_bad(y_d, r_d)),
        ts("Disk throughput", "Bytes read and written per second, per block device.",
           Q(f"sum by (instance, device) (rate(apm_host_disk_read_bytes_total{h}[{RI}]))",
             "{{instance}} {{device}} read"),
           Q(f"sum by (instance, device) (rate(apm_host_disk_written_bytes_total{h}[{RI}]))",
             "{{instance}} {{device}} written"), unit="Bps"),
        ts("Disk utilisation", "Share of time each device had I/O in flight; near 100% the device is the "
           "bottleneck.",
           Q(f"rate(apm_host_disk_io_time_seconds_total{h}[{RI}])", "{{instance}} {{device}}"),
           unit="percentunit", max=1, thresholds=high_bad(0.8, 0.95)),
        ts("Network throughput", "Bytes received and sent per second, per interface.",
           Q(f"sum by (instance, device) (rate(apm_host_network_receive_bytes_total{h}[{RI}]))",
             "{{instance}} {{device}} in"),
           Q(f"sum by (instance, device) (rate(apm_host_network_transmit_bytes_total{h}[{RI}]))",
             "{{instance}} {{device}} out"), unit="Bps"),
        ts("Network errors and drops", "Packets per second with errors or dropped, in and out together.",
           Q(f"sum by (instance, device) (rate(apm_host_network_receive_errors_total{h}[{RI}])) + "
             f"sum by (instance, device) (rate(apm_host_network_transmit_errors_total{h}[{RI}]))",
             "{{instance}} {{device}} errors"),
           Q(f"sum by (instance, device) (rate(apm_host_network_receive_drops_total{h}[{RI}])) + "
             f"sum by (instance, device) (rate(apm_host_network_transmit_drops_total{h}[{RI}]))",
             "{{instance}} {{device}} drops"), unit="pps", thresholds=any_bad(0.01)),
        ts("File descriptors", "File descriptors allocated system-wide over fs.file-max.",
           Q(f"apm_host_filefd_allocated{h} / on (job, instance) apm_host_filefd_maximum{h}", "{{instance}}"),
           unit="percentunit", thresholds=high_bad(0.7, 0.9)),
        ts("Pressure (some)", "Share of time at least one task waited for a CPU, for memory (reclaim, swap-in) "
           "or for I/O: pressure stall information. Unlike utilisation it says how long work was delayed. "
           "ApmHostMemoryPressure fires above 10% for memory.",
           Q(f"rate(apm_host_pressure_cpu_waiting_seconds_total{h}[{RI}])", "{{instance}} cpu"),
           Q(f"rate(apm_host_pressure_memory_waiting_seconds_total{h}[{RI}])", "{{instance}} memory"),
           Q(f"rate(apm_host_pressure_io_waiting_seconds_total{h}[{RI}])", "{{instance}} io"),
           unit="percentunit", max=1, thresholds=high_bad(0.1, 0.25)),
        ts("Pressure (full)", "Share of time every non-idle task was stalled at once, on memory or on I/O: "
           "time in which the host got no work done at all.",
           Q(f"rate(apm_host_pressure_memory_stalled_seconds_total{h}[{RI}])", "{{instance}} memory"),
           Q(f"rate(apm_host_pressure_io_stalled_seconds_total{h}[{RI}])", "{{instance}} io"),
           unit="percentunit", max=1, thresholds=high_bad(0.05, 0.1)),
        ts("OOM kills and major faults", "Processes the kernel's OOM killer killed (any cgroup, per window; "
           "ApmHostOomKills fires on one) and page faults per second that had to read from disk.",
           Q(f"sum by (instance) (increase(apm_host_oom_kills_total{h}[{RI}]))", "{{instance}} OOM kills"),
           Q(f"sum by (instance) (rate(apm_host_major_page_faults_total{h}[{RI}]))", "{{instance}} major faults/s")),
        ts("Memory detail", "What stands behind available memory: page cache waiting for the disk (dirty, "
           "writeback), kernel slab nothing frees, tmpfs and shared memory, and memory promised to processes "
           "(committed) against the strict-overcommit limit.",
           Q(f"sum by (instance) (apm_host_memory_dirty_bytes{h})", "{{instance}} dirty"),
           Q(f"sum by (instance) (apm_host_memory_writeback_bytes{h})", "{{instance}} writeback"),
           Q(f"sum by (instance) (apm_host_memory_slab_unreclaimable_bytes{h})", "{{instance}} slab unreclaimable"),
           Q(f"sum by (instance) (apm_host_memory_shmem_bytes{h})", "{{instance}} shmem"),
           Q(f"sum by (instance) (apm_host_memory_committed_bytes{h})", "{{instance}} committed"),
           Q(f"sum by (instance) (apm_host_memory_commit_limit_bytes{h})", "{{instance}} commit limit"),
           unit="bytes"),
        ts("TCP retransmits", "Share of TCP segments sent that were retransmissions: loss or congestion on the "
           "path. Yellow from 1%, red from 5%.",
           Q(f"sum by (instance) (rate(apm_host_tcp_retransmitted_segments_total{h}[{RI}])) / "
             f"(sum by (instance) (rate(apm_host_tcp_out_segments_total{h}[{RI}])) > 0)", "{{instance}}"),
           unit="percentunit", thresholds=high_bad(0.01, 0.05)),
        ts("TCP listen queue and receive path drops", "Connections dropped because a listener's accept queue "
           "was full (the app accepts too slowly or its backlog is small), SYN cookies sent (SYN queue full), "
           "and packets the kernel dropped because a CPU's receive backlog was full (softnet). Accept-queue "
           "overflows that last 10 minutes fire ApmHostTcpListenOverflows.",
           Q(f"sum by (instance) (rate(apm_host_tcp_listen_overflows_total{h}[{RI}]))",
             "{{instance}} accept queue full"),
           Q(f"sum by (instance) (rate(apm_host_tcp_listen_drops_total{h}[{RI}]))", "{{instance}} listen drops"),
           Q(f"sum by (instance) (rate(apm_host_tcp_syncookies_sent_total{h}[{RI}]))", "{{instance}} SYN cookies"),
           Q(f"sum by (instance) (rate(apm_host_softnet_dropped_total{h}[{RI}]))", "{{instance}} softnet drops"),
           unit="cps", thresholds=any_bad(0.01)),
        ts("Connection tracking", "Entries in the netfilter connection tracking table over nf_conntrack_max: "
           "when full, packets of new connections are dropped (ApmHostConntrackNearLimit from 90%). Empty "
           "where the nf_conntrack module is not loaded.",
           Q(f"apm_host_conntrack_entries{h} / on (job, instance) (apm_host_conntrack_entries_limit{h} > 0)",
             "{{instance}}"), unit="percentunit", max=1, thresholds=high_bad(0.75, 0.9)),
        ts("Read-only filesystems and links down", "Filesystems mounted read-only (a jump means the kernel "
           "remounted one after an error: ApmHostFilesystemReadOnly), and "
           "interfaces whose operational state is not up (lo, which reports unknown, left out).",
           Q(f"sum by (instance) (apm_host_filesystem_readonly{h})", "{{instance}} read-only filesystems"),
           Q(f"sum by (instance) (1 - apm_host_network_up{not_lo})", "{{instance}} links not up"),
           thresholds=any_bad(1)),
        ts("Clock", "Offset the kernel is still correcting and its bound of the clock's error (adjtimex). The "
           "bound sits at 16 s while no time daemon disciplines the clock (ApmHostClockNotSynchronising).",
           Q(f"apm_host_timex_offset_seconds{h}", "{{instance}} offset"),
           Q(f"apm_host_timex_maxerror_seconds{h}", "{{instance}} max error"), unit="s", min=None),
        ts("Health score", "0-100 per instance: 100 minus penalties for CPU busy (>70% -10, >90% -25), memory "
           "used (>80% -10, >95% -25) and the fullest filesystem (>85% -10, >95% -20).",
           Q(f"instance:apm_health:score{h}", "{{instance}}"), unit="none", max=100,
           thresholds=low_bad(50, 80)),
        row("Container (cgroup of the exporter)"),
        ts("Container CPU against limit", "CPU cores the cgroup uses, and its limit (quota / period; absent "
           "when unlimited).",
           Q(f"rate(apm_container_cpu_usage_seconds_total{h}[{RI}])", "{{instance}} used"),
           Q(f"apm_container_cpu_limit_cores{h}", "{{instance}} limit")),
        ts("CPU throttling", "Share of CFS periods in which the cgroup was throttled: above a few percent "
           "the CPU limit slows the app even when average usage looks low.",
           Q(f"rate(apm_container_cpu_cfs_throttled_periods_total{h}[{RI}]) / "
             f"(rate(apm_container_cpu_cfs_periods_total{h}[{RI}]) > 0)", "{{instance}}"),
           unit="percentunit", max=1, thresholds=high_bad(0.05, 0.25)),
        ts("Throttled time", "Seconds per second the cgroup's threads spent throttled.",
           Q(f"rate(apm_container_cpu_cfs_throttled_seconds_total{h}[{RI}])", "{{instance}}"), unit="s",
           thresholds=high_bad(0.05, 0.25)),
        ts("Container memory against limit", "Working set (what the OOM killer and kubelet watch), RSS, and "
           "the cgroup's memory limit (absent when unlimited).",
           Q(f"apm_container_memory_working_set_bytes{h}", "{{instance}} working set"),
           Q(f"apm_container_memory_rss_bytes{h}", "{{instance}} rss"),
           Q(f"apm_container_memory_limit_bytes{h}", "{{instance}} limit"), unit="bytes"),
        ts("Memory working set / limit", "Working set over the memory limit: at 100% the kernel reclaims "
           "hard, then OOM-kills.",
           Q(f"apm_container_memory_working_set_bytes{h} / on (job, instance) apm_container_memory_limit_bytes{h}",
             "{{instance}}"), unit="percentunit", max=1, thresholds=high_bad(0.8, 0.9)),
        ts("Memory events", "Memory limit events per second: max (limit hit), oom, oom_kill.",
           Q(f"sum by (instance, event) (rate(apm_container_memory_events_total{h}[{RI}]))",
             "{{instance}} {{event}}"), unit="ops", thresholds=any_bad(0.001)),
        ts("Tasks against limit", "Processes and threads in the cgroup, and the pids limit.",
           Q(f"apm_container_pids{h}", "{{instance}} tasks"),
           Q(f"apm_container_pids_limit{h}", "{{instance}} limit")),
        row("Process groups"),
        ts("CPU by process group", "CPU cores used by each group's processes (user and system).",
           Q(f"sum by (group) (rate(apm_process_cpu_seconds_total{g}[{RI}]))", "{{group}}")),
        ts("Resident memory by process group", "Resident memory of each group's processes, summed.",
           Q(f"sum by (group) (apm_process_resident_memory_bytes{g})", "{{group}}"), unit="bytes"),
        ts("Open file descriptors by process group", "File descriptors the group's processes hold.",
           Q(f"sum by (group) (apm_process_open_fds{g})", "{{group}}")),
        ts("Processes and threads", "Processes in each group and their threads: a group at 0 processes is "
           "not running.",
           Q(f"sum by (group) (apm_process_processes{g})", "{{group}} processes"),
           Q(f"sum by (group) (apm_process_threads{g})", "{{group}} threads"),
           thresholds=steps(("red", None), ("green", 1))),
        ts("Process I/O", "Bytes per second the group's processes caused to be read from and written to "
           "storage.",
           Q(f"sum by (group) (rate(apm_process_read_bytes_total{g}[{RI}]))", "{{group}} read"),
           Q(f"sum by (group) (rate(apm_process_written_bytes_total{g}[{RI}]))", "{{group}} written"),
           unit="Bps"),
        ts("Oldest process age", "Seconds since the group's oldest process started: a drop is a restart.",
           Q(f"time() - min by (group) (apm_process_oldest_start_time_seconds{g})", "{{group}}"), unit="s"),
    ], ("group", "Process group", "apm_process_processes"))


def exporter() -> Dashboard:
    e = sel()
    return Dashboard("apm-exporter", "APM / Exporter",
                     "The exporter itself: scrape duration per collector, failures, probe targets, StatsD "
                     "lines and errors, series and drops.", [
        row("Status"),
        stat("Exporters up", "Exporters Prometheus scraped successfully, out of the selected ones "
             "(ApmExporterDown).", Q(f"sum(up{e})"), thresholds=steps(("red", None), ("green", 1))),
        stat("Targets down", "Probe targets (Redis, PgBouncer, HTTP...) that did not answer the last scrape "
             "(ApmTargetDown).", Q(f"count(apm_up{e} == 0) or vector(0)"), thresholds=any_bad()),
        stat("Collectors failing", "Collectors or probes that failed or timed out in the last scrape "
             "(ApmCollectorFailing).", Q(f"count(apm_exporter_collector_success{e} == 0) or vector(0)"),
             thresholds=any_bad()),
        stat("Last config reload", "Whether every selected exporter's last configuration load succeeded "
             "(ApmExporterConfigReloadFailed).", Q(f"min(apm_exporter_config_last_reload_successful{e})"),
             mappings=OK_FAILED, thresholds=steps(("red", None), ("green", 1))),
        row("Collectors and probes"),
        ts("Collector duration", "How long each collector (and each probe target) took in the last scrape; "
           "probes are bounded by their timeout.",
           Q(f"max by (collector, target) (apm_exporter_collector_duration_seconds{e})",
             "{{collector}} {{target}}"), unit="s", thresholds=high_bad(1, 5)),
        ts("Collector failures", "Instances on which each collector failed or timed out in the last scrape "
           "(0: all succeed).",
           Q(f"sum by (collector, target) (1 - apm_exporter_collector_success{e})", "{{collector}} {{target}}"),
           thresholds=any_bad()),
        table("Probe targets", "Every probe target and whether it answered the last scrape.",
              Q(f"max by (instance, collector, target) (apm_up{e})"),
              mappings=UP_DOWN, thresholds=steps(("red", None), ("green", 1)),
              overrides=column_names(A="state")),
        table("Builds", "Which version runs where.",
              Q(f"max by (instance, version, python_version) (apm_exporter_build_info{e})"),
              overrides=[{"matcher": {"id": "byName", "options": "Value #A"},
                          "properties": [{"id": "custom.hidden", "value": True}]}]),
        row("StatsD"),
        ts("Lines and samples received", "StatsD lines and the samples they carried per second, per "
           "listener.",
           Q(f"sum by (instance, listener) (rate(apm_exporter_statsd_lines_total{e}[{RI}]))",
             "{{instance}} {{listener}} lines"),
           Q(f"sum by (instance, listener) (rate(apm_exporter_statsd_samples_total{e}[{RI}]))",
             "{{instance}} {{listener}} samples"), unit="cps"),
        ts("Datagrams and bytes received", "Packets (or TCP reads) per second and the bytes they carried.",
           Q(f"sum by (instance, listener) (rate(apm_exporter_statsd_packets_total{e}[{RI}]))",
             "{{instance}} {{listener}} packets"),
           Q(f"sum by (instance, listener) (rate(apm_exporter_statsd_bytes_total{e}[{RI}]))",
             "{{instance}} {{listener}} bytes"), unit="short"),
        ts("Datagrams dropped by the kernel", "UDP datagrams per second the kernel dropped because a "
           "listener's receive buffer was full, so the daemon never saw them (ApmStatsdKernelDrops); the "
           "host-wide figure counts every socket's overflows.",
           Q(f"sum by (instance, listener) (rate(apm_exporter_statsd_kernel_drops_total{e}[{RI}]))",
             "{{instance}} {{listener}}"),
           Q(f"sum by (instance) (rate(apm_host_udp_receive_buffer_errors_total{e}[{RI}]))",
             "{{instance}} host"), unit="cps", thresholds=any_bad(0.01)),
        ts("Parse errors by reason", "StatsD lines rejected per second, by reason (ApmStatsdParseErrors when "
           "over 1% of lines).",
           Q(f"sum by (reason) (rate(apm_exporter_statsd_parse_errors_total{e}[{RI}]))", "{{reason}}"),
           unit="cps", thresholds=any_bad(0.01)),
        ts("Samples dropped by reason", "Samples the series store refused per second: series limits, type or "
           "label conflicts. Each is a lost measurement (ApmStatsdSamplesDropped).",
           Q(f"sum by (reason) (rate(apm_exporter_statsd_samples_dropped_total{e}[{RI}]))", "{{reason}}"),
           unit="cps", thresholds=any_bad(0.01)),
        ts("Lines ignored and unmapped", "Well-formed lines deliberately not stored (DogStatsD events, "
           "service checks, rule drops) and lines handled by the default mapping rule.",
           Q(f"sum by (reason) (rate(apm_exporter_statsd_lines_ignored_total{e}[{RI}]))", "ignored {{reason}}"),
           Q(f"sum (rate(apm_exporter_statsd_lines_unmapped_total{e}[{RI}]))", "unmapped"), unit="cps"),
        ts("TCP connection errors", "TCP StatsD connection problems per second: idle timeouts, overlong "
           "lines, unterminated last lines, refusals.",
           Q(f"sum by (reason) (rate(apm_exporter_statsd_tcp_errors_total{e}[{RI}]))", "{{reason}}"),
           unit="cps", thresholds=any_bad(0.01)),
        row("Series"),
        ts("Pushed series held", "Series StatsD created that the store holds now; near the configured limit "
           "new series are dropped.",
           Q(f"sum by (instance) (apm_exporter_series{e})", "{{instance}}")),
        ts("Series expired", "Pushed series removed per second after going without updates for their TTL.",
           Q(f"sum by (instance) (rate(apm_exporter_series_expired_total{e}[{RI}]))", "{{instance}}"),
           unit="cps"),
        ts("Mapping rules and cache", "Mapping rules loaded, and distinct name+tags keys in the routing "
           "cache (grows with the number of distinct StatsD series).",
           Q(f"max by (instance) (apm_exporter_statsd_mapping_rules{e})", "{{instance}} rules"),
           Q(f"max by (instance) (apm_exporter_statsd_mapping_cache_entries{e})", "{{instance}} cache entries")),
        row("Exporter process"),
        ts("Exporter CPU", "CPU cores the exporter process uses, by mode.",
           Q(f"sum by (instance, mode) (rate(apm_exporter_process_cpu_seconds_total{e}[{RI}]))",
             "{{instance}} {{mode}}"), stack=True, thresholds=high_bad(0.5, 1)),
        ts("Exporter memory", "Resident and virtual memory of the exporter process.",
           Q(f"apm_exporter_process_resident_memory_bytes{e}", "{{instance}} resident"),
           Q(f"apm_exporter_process_virtual_memory_bytes{e}", "{{instance}} virtual"), unit="bytes"),
        ts("Exporter open fds", "File descriptors the exporter holds (sockets to targets and clients).",
           Q(f"apm_exporter_process_open_fds{e}", "{{instance}}")),
        ts("Requests refused by basic auth", "Requests per second the web server refused, by reason (missing, "
           "malformed, unknown_user, wrong_password, overloaded). Only with basic_auth_users in "
           "--web.config.file; a steady rate is a scraper with stale credentials or someone guessing.",
           Q(f"sum by (instance, reason) (rate(apm_exporter_http_auth_failures_total{e}[{RI}]))",
             "{{instance}} {{reason}}"), unit="reqps", thresholds=any_bad(0.01)),
        ts("Scrapes served", "Metrics endpoint requests per second.",
           Q(f"sum by (instance) (rate(apm_exporter_scrapes_total{e}[{RI}]))", "{{instance}}"), unit="reqps"),
        ts("Uptime and config age", "Seconds since the process started and since its configuration was last "
           "loaded successfully.",
           Q(f"time() - apm_exporter_process_start_time_seconds{e}", "{{instance}} uptime"),
           Q(f"time() - apm_exporter_config_last_reload_success_timestamp_seconds{e}", "{{instance}} config age"),
           unit="s"),
        ts("Configuration reloads", "Reloads (SIGHUP, /-/reload) by outcome in the last hour.",
           Q(f"sum by (instance, outcome) (increase(apm_exporter_config_reloads_total{e}[1h]))",
             "{{instance}} {{outcome}}"), thresholds=NEUTRAL),
        row("HTTP probes"),
        ts("HTTP probe success", "1 when the last probe got an expected status code.",
           Q(f"max by (target) (apm_http_probe_success{e})", "{{target}}"), max=1, mappings=UP_DOWN,
           thresholds=steps(("red", None), ("green", 1))),
        ts("HTTP status code", "Status code of the last probe response.",
           Q(f"max by (target) (apm_http_probe_status_code{e})", "{{target}}"), unit="none",
           thresholds=steps(("green", None), ("yellow", 300), ("red", 400))),
        ts("HTTP probe time by phase", "Where the last probe's time went (resolve, connect, tls, processing: "
           "request sent to first byte, transfer), summed over its redirects.",
           Q(f"max by (target, phase) (apm_http_probe_phase_seconds{e})", "{{target}} {{phase}}"),
           unit="s", stack=True),
        ts("HTTP probe failed checks", "1 while the last answer failed a check: status, redirects (past "
           "max_redirects), body_matches, body_not_matches, body_json.",
           Q(f"max by (target, reason) (apm_http_probe_failed{e})", "{{target}} {{reason}}"),
           unit="none", thresholds=NEUTRAL),
        ts("TLS certificate expires in", "Time left before the earliest-expiring certificate each probed server "
           "sends expires. Yellow under 30 days, red under 7.",
           Q(f"min by (target) (apm_http_probe_tls_cert_expiry_timestamp_seconds{e}) - time()", "{{target}}"),
           unit="s", thresholds=low_bad(7 * 86400, 30 * 86400)),
    ])


def dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON, in menu order."""
    return {f"{name}.json": make().render() for name, make in (
        ("overview", overview), ("caches", caches), ("pools", pools), ("queues", queues),
        ("host", host), ("exporter", exporter))}


def text(dashboard: dict[str, Any]) -> str:
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if grafana/dashboards/ is not up to date")
    args = parser.parse_args(argv)
    stale = []
    OUT.mkdir(exist_ok=True)
    for name, dashboard in dashboards().items():
        path, want = OUT / name, text(dashboard)
        if path.exists() and path.read_text() == want:
            continue
        stale.append(name)
        if not args.check:
            path.write_text(want)
    if args.check and stale:
        print(f"out of date (run python3 grafana/generate.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
