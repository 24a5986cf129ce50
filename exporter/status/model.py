"""From the daemon's families to history rows, and from the history to the status model.

`Sampler.observe` turns one collect() (the families /metrics would render) into
one row per thing a person looks at: an operation, a cache, a pool, a target.
Counters and histogram buckets become per-step deltas (a value lower than the
last one is a reset: it counts from zero, as PromQL's increase() does); gauges
stay as they are. `snapshot` reads windows of 1, 5 and 15 minutes from the
history and returns the JSON-ready model that the page, `/api/v1/status` and
`report --html` show. Only `model.Family` values are read, never a store.
"""

from __future__ import annotations

import math
import time
from array import array
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from exporter import __version__
from exporter import families as F
from exporter.model import Family, HistogramValue
from exporter.status.health import OK_OUTCOMES, Objectives, health
from exporter.status.history import NAN, History, Key
from exporter.tools.quantiles import sorted_quantiles

WINDOWS = (("1m", 60.0), ("5m", 300.0), ("15m", 900.0))
HEADLINE = "5m"  # the window the top-level figures, the ordering and the health score use
QUANTILES = (0.5, 0.95, 0.99)
INF = math.inf

# Column layouts of the rows that are not plain lists of buckets: per-step deltas of the
# counters first, then the gauges, then figures derived per step (for the sparklines).
CACHE = ("hits", "misses", "evictions", "entries", "capacity", "memory", "memory_limit", "hit_ratio")
HOST = ("cpu_busy", "cpu_total", "net_rx", "net_tx", "disk_read", "disk_written",
        "cpus", "load1", "mem_total", "mem_avail")
JOB = ("duration", "success", "up")
INTAKE = ("packets", "lines", "samples", "bytes")
# Rows whose counters the daemon itself starts at zero (pushed operations, its own counters): one
# first seen after the last sample counts from zero. Others (a probed cache's counters since its
# server started, the host's since boot) need two samples before they give a delta.
FROM_ZERO = frozenset({"op", "intake", "parse", "dropped", "kernel", "tcp", "auth", "reload", "otlp",
                       "otlp_rejected"})


def _index(columns: Sequence[str]) -> dict[str, int]:
    return {c: i for i, c in enumerate(columns)}


def _quantile(q: float, bounds: Sequence[float], counts: Sequence[float]) -> float:
    """q-quantile of cumulative bucket counts (the last one +Inf, i.e. the count)."""
    return _quantiles((q,), bounds, counts)[0]


def _quantiles(qs: Sequence[float], bounds: Sequence[float], counts: Sequence[float]) -> list[float]:
    if not counts or not counts[-1] > 0:
        return [NAN] * len(qs)
    return sorted_quantiles(qs, bounds, counts)


class Sampler:
    """Keeps the last cumulative values per row, to turn the next collect into deltas."""

    def __init__(self, history: History) -> None:
        self.history = history
        self._last: dict[Key, array[float]] = {}
        self._observed = False
        self.op_bounds: tuple[float, ...] = (*F.LATENCY_BUCKETS, INF)
        self.pool_bounds: tuple[float, ...] = (*F.LATENCY_BUCKETS, INF)

    def observe(self, families: Iterable[Family], at: float | None = None) -> None:
        at = time.time() if at is None else at
        rows = self.rows(families)
        # An operation's buckets and errors are whole counts: stored compactly while they fit.
        self.history.append(at, rows, integral={"op": len(self.op_bounds) + 1})

    def rows(self, families: Iterable[Family]) -> dict[Key, list[float]]:
        """One row per key: cumulative parts turned into deltas against the previous call."""
        by_name: dict[str, Family] = {}
        for fam in families:
            if not fam.spec.namespaced:
                continue
            seen = by_name.get(fam.spec.name)
            # A family can come from several sources (the store and a probe): read them as one.
            by_name[fam.spec.name] = fam if seen is None else Family(seen.spec, [*seen.samples, *fam.samples])
        cumulative: dict[Key, list[float]] = {}  # deltas to take (whole vectors)
        gauges: dict[Key, list[float]] = {}
        self._operations(by_name, cumulative)
        self._caches(by_name, cumulative, gauges)
        self._pools(by_name, cumulative, gauges)
        self._queues(by_name, cumulative, gauges)
        self._host(by_name, cumulative, gauges)
        self._jobs(by_name, gauges)
        self._statsd(by_name, cumulative, gauges)
        out: dict[Key, list[float]] = {}
        last = self._last
        self._last = {}
        for key, values in cumulative.items():
            current = array("d", values)
            self._last[key] = current
            before = last.get(key)
            if before is None and self._observed and key[0] in FROM_ZERO:
                before = array("d", [0.0]) * len(current)  # pushed after the last sample: all of it is new
            if before is None or len(before) != len(current):
                deltas = [NAN] * len(values)
            else:
                deltas = [c - b if c >= b else c for c, b in zip(current, before, strict=True)]
            out[key] = deltas
        for key, values in gauges.items():
            out[key] = out.pop(key, []) + values if key in cumulative else values
        self._derive(out)
        self._observed = True
        return out

    # --- one method per section: what each reads from which families ----------------------

    def _operations(self, fams: dict[str, Family], cumulative: dict[Key, list[float]]) -> None:
        fam = fams.get(F.OPERATION_DURATION.name)
        if fam is None:
            return
        self.op_bounds = (*fam.spec.buckets, INF)
        width = len(self.op_bounds) + 2  # buckets, +Inf (the count), errors (whole counts), then sum
        acc: dict[Key, list[float]] = {}
        for labels, value in zip(*_columns(fam), strict=True):
            if not isinstance(value, HistogramValue):
                continue
            key = ("op", labels[0] if labels else "")
            row = acc.get(key)
            if row is None:
                row = acc[key] = [0.0] * width
            for i, c in enumerate(value.counts):
                row[i] += c
            n = len(value.counts)
            row[n] += value.count
            if len(labels) > 1 and labels[1] not in OK_OUTCOMES:
                row[n + 1] += value.count
            row[n + 2] += value.sum
        cumulative.update(acc)

    def _caches(self, fams: dict[str, Family], cumulative: dict[Key, list[float]],
                gauges: dict[Key, list[float]]) -> None:
        counters: dict[Key, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        for labels, v in _samples(fams, F.CACHE_REQUESTS):
            counters[("cache", labels[0], labels[1])][0 if labels[2] == "hit" else 1] += v
        for labels, v in _samples(fams, F.CACHE_EVICTIONS):
            counters[("cache", labels[0], labels[1])][2] += v
        levels: dict[Key, list[float]] = defaultdict(lambda: [NAN, NAN, NAN, NAN])
        for column, spec in enumerate((F.CACHE_ENTRIES, F.CACHE_CAPACITY, F.CACHE_MEMORY, F.CACHE_MEMORY_LIMIT)):
            for labels, v in _samples(fams, spec):
                levels[("cache", labels[0], labels[1])][column] = v
        for key in {*counters, *levels}:
            cumulative[key] = counters[key] if key in counters else [NAN, NAN, NAN]
            gauges[key] = levels[key] if key in levels else [NAN] * 4
            gauges[key].append(NAN)  # hit_ratio, derived

    def _pools(self, fams: dict[str, Family], cumulative: dict[Key, list[float]],
               gauges: dict[Key, list[float]]) -> None:
        g: dict[Key, list[float]] = defaultdict(lambda: [0.0, 0.0, NAN, 0.0, NAN])
        for labels, v in _samples(fams, F.POOL_CONNECTIONS):
            if labels[1] in ("active", "idle"):
                g[("pool", labels[0])][0 if labels[1] == "active" else 1] += v
        for labels, v in _samples(fams, F.POOL_MAX_CONNECTIONS):
            g[("pool", labels[0])][2] = v
        for labels, v in _samples(fams, F.POOL_PENDING):
            g[("pool", labels[0])][3] += v
        for labels, v in _samples(fams, F.POOL_CLIENTS):
            if labels[1] == "waiting":
                g[("pool", labels[0])][3] += v
        for labels, v in _samples(fams, F.POOL_MAX_WAIT):
            row = g[("pool", labels[0])]
            row[4] = v if math.isnan(row[4]) else max(row[4], v)
        c: dict[Key, list[float]] = {}
        fam = fams.get(F.POOL_WAIT_DURATION.name)
        if fam is not None:
            self.pool_bounds = (*fam.spec.buckets, INF)
        width = len(self.pool_bounds) + 1  # timeouts, buckets with +Inf
        for labels, v in _samples(fams, F.POOL_TIMEOUTS):
            c.setdefault(("pool", labels[0]), [0.0] * width)[0] += v
        if fam is not None:
            for labels, value in zip(*_columns(fam), strict=True):
                if isinstance(value, HistogramValue):
                    row = c.setdefault(("pool", labels[0]), [0.0] * width)
                    for i, n in enumerate((*value.counts, value.count)):
                        row[1 + i] += n
        for key in set(g) | set(c):
            cumulative[key] = c.get(key, [NAN] * width)
            gauges[key] = [*(g[key] if key in g else [NAN] * 5), NAN]  # + wait_p99, derived

    def _queues(self, fams: dict[str, Family], cumulative: dict[Key, list[float]],
                gauges: dict[Key, list[float]]) -> None:
        g: dict[Key, list[float]] = defaultdict(lambda: [NAN, NAN, NAN])
        for labels, v in _samples(fams, F.QUEUE_DEPTH):
            row = g[("queue", labels[0])]
            row[0] = v if math.isnan(row[0]) else row[0] + v
        for labels, v in _samples(fams, F.QUEUE_CONSUMER_LAG):
            row = g[("queue", labels[0])]
            row[1] = v if math.isnan(row[1]) else max(row[1], v)
        for labels, v in _samples(fams, F.QUEUE_PENDING):
            row = g[("queue", labels[0])]
            row[2] = v if math.isnan(row[2]) else row[2] + v
        c: dict[Key, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for labels, v in _samples(fams, F.BATCH_ITEMS):
            c[("queue", labels[0])][0 if labels[1] in OK_OUTCOMES else 1] += v
        for key in set(g) | set(c):
            gauges[key] = g[key] if key in g else [NAN] * 3
            cumulative[key] = c[key] if key in c else [NAN, NAN]

    def _host(self, fams: dict[str, Family], cumulative: dict[Key, list[float]],
              gauges: dict[Key, list[float]]) -> None:
        if F.HOST_CPU_SECONDS.name in fams or F.HOST_MEMORY_TOTAL.name in fams:
            cpu = {labels[0]: v for labels, v in _samples(fams, F.HOST_CPU_SECONDS)}
            total = sum(cpu.values())
            idle = cpu.get("idle", 0.0) + cpu.get("iowait", 0.0)
            cumulative[("host",)] = [total - idle if cpu else NAN, total if cpu else NAN]
            gauges[("host",)] = [_one(fams, F.HOST_CPUS), _one(fams, F.HOST_LOAD1),
                                 _one(fams, F.HOST_MEMORY_TOTAL), _one(fams, F.HOST_MEMORY_AVAILABLE)]
            cumulative[("host",)] += [_sum(fams, spec) for spec in (
                F.HOST_NET_RX_BYTES, F.HOST_NET_TX_BYTES, F.HOST_DISK_READ_BYTES, F.HOST_DISK_WRITTEN_BYTES)]
        sizes = {labels[1]: v for labels, v in _samples(fams, F.HOST_FS_SIZE)}
        for labels, v in _samples(fams, F.HOST_FS_AVAIL):
            if sizes.get(labels[1], 0) > 0:
                gauges[("fs", labels[1])] = [sizes[labels[1]], v]
        if F.CONTAINER_MEMORY_WORKING_SET.name in fams or F.CONTAINER_CPU_USAGE.name in fams:
            cumulative[("container",)] = [_sum(fams, F.CONTAINER_CPU_USAGE)]
            gauges[("container",)] = [_one(fams, F.CONTAINER_MEMORY_WORKING_SET),
                                      _one(fams, F.CONTAINER_MEMORY_LIMIT), _one(fams, F.CONTAINER_CPU_LIMIT)]
        rss = _one(fams, F.PROCESS_RSS)
        if not math.isnan(rss):
            cumulative[("self",)] = [_sum(fams, F.PROCESS_CPU)]
            gauges[("self",)] = [rss, _one(fams, F.SERIES)]

    def _jobs(self, fams: dict[str, Family], gauges: dict[Key, list[float]]) -> None:
        rows: dict[Key, list[float]] = defaultdict(lambda: [NAN, NAN, NAN])
        for column, spec in enumerate((F.COLLECTOR_DURATION, F.COLLECTOR_SUCCESS, F.UP)):
            for labels, v in _samples(fams, spec):
                rows[("job", labels[0], labels[1])][column] = v
        gauges.update(rows)

    def _statsd(self, fams: dict[str, Family], cumulative: dict[Key, list[float]],
                gauges: dict[Key, list[float]]) -> None:
        intake: dict[Key, list[float]] = defaultdict(lambda: [0.0] * 4)
        for column, spec in enumerate((F.STATSD_PACKETS, F.STATSD_LINES, F.STATSD_SAMPLES, F.STATSD_BYTES)):
            for labels, v in _samples(fams, spec):
                intake[("intake", labels[0])][column] += v
        cumulative.update(intake)
        otlp: dict[Key, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for column, spec in enumerate((F.OTLP_REQUESTS, F.OTLP_DATA_POINTS)):
            for labels, v in _samples(fams, spec):
                otlp[("otlp", labels[0])][column] += v
        cumulative.update(otlp)
        for labels, v in _samples(fams, F.OTLP_REQUESTS_REJECTED):
            cumulative[("otlp_rejected", f"{labels[0]} request: {labels[1]}")] = [v]
        for labels, v in _samples(fams, F.OTLP_DATA_POINTS_REJECTED):
            cumulative[("otlp_rejected", f"data point: {labels[0]}")] = [v]
        for kind, spec in (("parse", F.STATSD_PARSE_ERRORS), ("dropped", F.STATSD_SAMPLES_DROPPED),
                           ("kernel", F.STATSD_KERNEL_DROPS),
                           ("tcp", F.STATSD_TCP_ERRORS), ("auth", F.HTTP_AUTH_FAILURES)):
            for labels, v in _samples(fams, spec):
                cumulative[(kind, labels[0])] = [v]
        if F.CONFIG_LAST_RELOAD_SUCCESSFUL.name in fams:
            reloads = {labels[0]: v for labels, v in _samples(fams, F.CONFIG_RELOADS)}
            gauges[("reload",)] = [_one(fams, F.CONFIG_LAST_RELOAD_SUCCESSFUL),
                                   _one(fams, F.CONFIG_LAST_RELOAD_SUCCESS_TIME)]
            cumulative[("reload",)] = [reloads.get("success", 0.0), reloads.get("failure", 0.0)]

    def _derive(self, out: dict[Key, list[float]]) -> None:
        """Per-step figures the sparklines draw: an operation's p99, a cache's hit ratio."""
        nb = len(self.op_bounds)
        for key, row in out.items():
            kind = key[0]
            if kind == "op":
                row.append(_quantile(0.99, self.op_bounds, row[:nb]))
            elif kind == "cache":
                lookups = row[0] + row[1]
                row[7] = row[0] / lookups if lookups > 0 else NAN
            elif kind == "pool":
                buckets = row[1:1 + len(self.pool_bounds)]
                row[-1] = _quantile(0.99, self.pool_bounds, buckets)


def _columns(fam: Family) -> tuple[Sequence[tuple[str, ...]], Sequence[Any]]:
    samples = fam.samples
    labels = getattr(samples, "labels", None)
    if labels is not None:
        return labels, samples.values  # type: ignore[attr-defined]
    return [s.labels for s in samples], [s.value for s in samples]


def _samples(fams: dict[str, Family], spec: F.FamilySpec) -> Iterable[tuple[tuple[str, ...], float]]:
    fam = fams.get(spec.name)
    if fam is None:
        return ()
    labels, values = _columns(fam)
    width = len(spec.labels)
    return ((ls if len(ls) == width else (*ls, *[""] * (width - len(ls))), float(v))
            for ls, v in zip(labels, values, strict=True) if isinstance(v, (int, float)))


def _one(fams: dict[str, Family], spec: F.FamilySpec) -> float:
    for _, v in _samples(fams, spec):
        return v
    return NAN


def _sum(fams: dict[str, Family], spec: F.FamilySpec) -> float:
    values = [v for _, v in _samples(fams, spec)]
    return sum(values) if values else NAN


# --- the model ----------------------------------------------------------------------------


def _none(v: float | None) -> float | None:
    return v if v is not None and v == v and v != INF and v != -INF else None


def _spark(values: list[float]) -> list[float | None]:
    return [None if v != v else v for v in values]


class Model:
    """Builds the status dict from a history; `errors` gives a target's last error text."""

    def __init__(self, history: History, sampler: Sampler, objectives: Objectives | None = None) -> None:
        self.history = history
        self.sampler = sampler
        self.objectives = objectives or Objectives()

    def snapshot(self, errors: dict[tuple[str, str], tuple[float, str]] | None = None,
                 started_at: float | None = None, spark_rows: int | None = None) -> dict[str, Any]:
        """`spark_rows` limits the operations with windows, quantiles and sparklines to the slowest N,
        and the targets with sparklines to the first N (the page shows no more; the JSON has all)."""
        h = self.history
        steps = {name: h.steps(s) for name, s in WINDOWS}
        spans = {name: h.span(n) for name, n in steps.items()}
        now = h.times[h.head] if h.head >= 0 else time.time()
        status: dict[str, Any] = {
            "generated_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
            "source": "apm-exporter status (in-memory history)",
            "version": __version__,
            "window_seconds": spans[HEADLINE] or None,
            "windows": {name: spans[name] for name in steps},
            "history": {"step_seconds": h.step, "points": h.points, "samples": h.rows, "keys": len(h),
                        "bytes": h.nbytes()},
            "started_at": started_at,
        }
        status["operations"] = self._operations(steps, spans, spark_rows)
        status["caches"] = self._caches(steps, spans)
        status["pools"] = self._pools(steps, spans)
        status["queues"] = self._queues()
        status["host"] = self._host(steps, spans)
        status["container"] = self._container(steps, spans)
        status["targets"], status["collectors"] = self._jobs(errors or {}, spark_rows)
        status["targets_down"] = [{"collector": t["collector"], "target": t["target"]}
                                  for t in status["targets"] if t["up"] == 0]
        status["statsd"] = self._statsd(steps, spans)
        status["reload"] = self._reload()
        status["exporter"] = self._self(steps, spans)
        status["health"] = health(status, self.objectives)
        return status

    def _operations(self, steps: dict[str, int], spans: dict[str, float], detail_rows: int | None
                    ) -> list[dict[str, Any]]:
        """Every operation's headline (count, rate, errors, p99 over 5 minutes: what the order and the
        health score need); the other windows, quantiles and sparklines for the slowest `detail_rows`
        (all when None)."""
        h, bounds = self.history, self.sampler.op_bounds
        nb = len(bounds)
        n, span = steps[HEADLINE], spans[HEADLINE]
        out: list[dict[str, Any]] = []
        for key, total in h.window_sums("op", n):
            if len(total) < nb + 2:
                continue
            count = total[nb - 1]
            p99 = sorted_quantiles((0.99,), bounds, total[:nb])[0] if count > 0 else NAN
            out.append({"operation": key[1], "count": count, "rate": count / span if span else None,
                        "errors": total[nb], "error_ratio": total[nb] / count if count > 0 else None,
                        "p99": _none(p99), "mean": total[nb + 1] / count if count > 0 else None, "_key": key})
        out.sort(key=lambda o: (-(o["p99"] if o["p99"] is not None else -INF),
                                -(o["mean"] if o["mean"] is not None else -INF)))
        for i, o in enumerate(out):
            key = o.pop("_key")
            if detail_rows is not None and i >= detail_rows:
                continue
            windows = {}
            for name, k in steps.items():
                sums = h.total(key, k)
                count, errors = sums[nb - 1], sums[nb]
                ok = count > 0
                qs = _quantiles(QUANTILES, bounds, sums[:nb]) if ok else [NAN] * len(QUANTILES)
                windows[name] = {
                    "count": count, "rate": count / spans[name] if spans[name] else None,
                    "errors": errors, "error_ratio": errors / count if ok else None,
                    "p50": _none(qs[0]), "p95": _none(qs[1]), "p99": _none(qs[2]),
                    "mean": sums[nb + 1] / count if ok else None,
                }
            o.update(windows[HEADLINE])
            o["windows"] = windows
            o["spark"] = {"rate": _spark([c / h.step if c == c else NAN for c in h.column(key, nb - 1)]),
                          "p99": _spark(h.column(key, nb + 2))}
        return out

    def _caches(self, steps: dict[str, int], spans: dict[str, float]) -> list[dict[str, Any]]:
        h, col = self.history, _index(CACHE)
        out: list[dict[str, Any]] = []
        n, span = steps[HEADLINE], spans[HEADLINE]
        for key in sorted(h.keys("cache"), key=str):
            total, last = h.total(key, n), h.last(key)
            hits, misses, evictions = (total[col[c]] for c in ("hits", "misses", "evictions"))
            lookups = (hits if hits == hits else 0.0) + (misses if misses == misses else 0.0)
            entries, capacity = last[col["entries"]], last[col["capacity"]]
            memory, limit = last[col["memory"]], last[col["memory_limit"]]
            fill = entries / capacity if capacity > 0 else (memory / limit if limit > 0 else NAN)
            out.append({
                "cache": key[1], "level": key[2], "lookups": lookups,
                "hit_ratio": _none(hits / lookups) if lookups else None,
                "lookup_rate": lookups / span if span else None,
                "eviction_rate": _none(evictions / span) if span and last[col["evictions"]] == last[col["evictions"]]
                else None,
                "entries": _none(entries), "capacity": _none(capacity), "fill_ratio": _none(fill),
                "spark": {"hit_ratio": _spark(h.column(key, col["hit_ratio"])),
                          "entries": _spark(h.column(key, col["entries"]))},
            })
        return out

    def _pools(self, steps: dict[str, int], spans: dict[str, float]) -> list[dict[str, Any]]:
        h, bounds = self.history, self.sampler.pool_bounds
        nb = len(bounds)
        out: list[dict[str, Any]] = []
        for key in sorted(h.keys("pool"), key=str):
            total, last = h.total(key, steps[HEADLINE]), h.last(key)
            span = spans[HEADLINE]
            # Row: timeouts, buckets (nb), then gauges active, idle, max, waiting, max_wait, wait_p99.
            g = last[1 + nb:]
            active, idle, most, waiting, max_wait = g[0], g[1], g[2], g[3], g[4]
            capacity = most if most > 0 else active + idle
            buckets = total[1:1 + nb]
            out.append({
                "pool": key[1], "active": _none(active), "idle": _none(idle), "max": _none(most),
                "utilisation": _none(active / capacity) if capacity > 0 else None,
                "waiting": waiting if waiting == waiting else 0.0, "max_wait_seconds": _none(max_wait),
                "wait_p99": _none(_quantile(0.99, bounds, buckets)) if buckets and buckets[-1] > 0 else None,
                "timeout_rate": _none(total[0] / span) if span else None,
                "spark": {"active": _spark(h.column(key, 1 + nb)), "waiting": _spark(h.column(key, 4 + nb))},
            })
        return out

    def _queues(self) -> list[dict[str, Any]]:
        h = self.history
        out: list[dict[str, Any]] = []
        for key in h.keys("queue"):
            # Row: batch_ok, batch_error (deltas), then depth, consumer_lag, unacknowledged.
            last = h.last(key)
            depth = h.column(key, 2)
            known = [v for v in depth if v == v]
            trend = (known[-1] - known[0]) / (h.span(len(depth) - 1) or 1) if len(known) > 1 else None
            batch = h.total(key, h.steps(300))
            span = h.span(h.steps(300))
            out.append({
                "queue": key[1], "depth": _none(last[2]), "consumer_lag": _none(last[3]),
                "unacknowledged": _none(last[4]), "depth_trend_per_second": _none(trend) if trend is not None else None,
                "batch_items_rate": _none((batch[0] + batch[1]) / span) if span and last[0] == last[0] else None,
                "batch_error_ratio": _none(batch[1] / (batch[0] + batch[1])) if batch[0] + batch[1] > 0 else None,
                "spark": {"depth": _spark(depth)},
            })
        out.sort(key=lambda q: -float(q["depth"] or 0))
        return out

    def _host(self, steps: dict[str, int], spans: dict[str, float]) -> dict[str, Any]:
        h, col = self.history, _index(HOST)
        out: dict[str, Any] = {"cpu_busy_ratio": None, "memory_used_ratio": None, "filesystems": [],
                               "cpu_window": HEADLINE}
        key = ("host",)
        last = h.last(key)
        if last:
            total = h.total(key, steps[HEADLINE])
            span = spans[HEADLINE]
            busy, cpu_total = total[col["cpu_busy"]], total[col["cpu_total"]]
            mem_total, mem_avail = last[col["mem_total"]], last[col["mem_avail"]]
            busy_steps = [b / t if t > 0 else NAN for b, t in zip(h.column(key, 0), h.column(key, 1), strict=True)]
            out.update({
                "cpu_busy_ratio": _none(busy / cpu_total) if cpu_total > 0 else None,
                "cpus": _none(last[col["cpus"]]), "load1": _none(last[col["load1"]]),
                "memory_used_ratio": _none(1 - mem_avail / mem_total) if mem_total > 0 else None,
                "memory_total_bytes": _none(mem_total),
                **{f"{c}_bytes_per_second": _none(total[col[c]] / span) if span else None
                   for c in ("net_rx", "net_tx", "disk_read", "disk_written")},
                "spark": {"cpu_busy_ratio": _spark(busy_steps),
                          "memory_used_ratio": _spark([1 - a / t if t > 0 else NAN for a, t in zip(
                              h.column(key, col["mem_avail"]), h.column(key, col["mem_total"]), strict=True)])},
            })
        for fs in sorted(h.keys("fs"), key=str):
            size, avail = h.last(fs)
            if size == size and avail == avail and size > 0:
                out["filesystems"].append({"mountpoint": fs[1], "used_ratio": 1 - avail / size,
                                           "avail_bytes": avail})
        return out

    def _container(self, steps: dict[str, int], spans: dict[str, float]) -> dict[str, Any] | None:
        h, key = self.history, ("container",)
        last = h.last(key)
        if not last:
            return None
        span = spans[HEADLINE]
        cpu = h.total(key, steps[HEADLINE])[0]
        limit = last[2]
        return {
            "cpu_cores": _none(cpu / span) if span else None, "cpu_limit_cores": _none(last[3]),
            "memory_working_set_bytes": _none(last[1]), "memory_limit_bytes": _none(limit),
            "memory_limit_ratio": _none(last[1] / limit) if limit > 0 else None,
            "spark": {"memory_working_set_bytes": _spark(h.column(key, 1))},
        }

    def _jobs(self, errors: dict[tuple[str, str], tuple[float, str]], detail_rows: int | None
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Probe targets (down first) and collectors; when a target last succeeded and the sparklines
        for the first `detail_rows` targets (all when None) and every collector."""
        h, col = self.history, _index(JOB)
        targets: list[tuple[Key, dict[str, Any]]] = []
        collectors: list[tuple[Key, dict[str, Any]]] = []
        for key in h.keys("job"):
            last = h.last(key)
            if not last or all(v != v for v in last):
                continue  # gone from the config: kept in the ring only until it rolls over
            name, target = str(key[1]), str(key[2])
            row: dict[str, Any] = {"collector": name, "target": target,
                                   "duration_seconds": _none(last[col["duration"]]),
                                   "success": _none(last[col["success"]])}
            up = last[col["up"]]
            if up == up:
                err = errors.get((name, target))
                row.update({"up": up, "last_error": err[1] if err else None, "last_error_at": err[0] if err else None})
                targets.append((key, row))
            else:
                collectors.append((key, row))
        targets.sort(key=lambda t: (t[1]["up"], t[1]["collector"], t[1]["target"]))
        collectors.sort(key=lambda c: -(c[1]["duration_seconds"] or 0))
        for i, (key, row) in enumerate(targets):
            if detail_rows is None or i < detail_rows:
                row["last_success_at"] = h.last_time(key, col["up"], 1.0)
                row["spark"] = {"up": _spark(h.column(key, col["up"])),
                                "duration_seconds": _spark(h.column(key, col["duration"]))}
        for key, row in collectors:
            row["spark"] = {"duration_seconds": _spark(h.column(key, col["duration"]))}
        return [row for _, row in targets], [row for _, row in collectors]

    def _statsd(self, steps: dict[str, int], spans: dict[str, float]) -> dict[str, Any]:
        h = self.history
        n, span = steps[HEADLINE], spans[HEADLINE]

        def counted(kind: str) -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = []
            for key in sorted(h.keys(kind), key=str):
                total = h.total(key, n)[0]
                since = h.total(key, h.points)[0]
                rows.append({"reason": key[1], "count": total if total == total else 0.0,
                             "count_15m": since if since == since else 0.0,
                             "rate": _none(total / span) if span and total == total else None,
                             "spark": {"count": _spark(h.column(key, 0))}})
            rows.sort(key=lambda r: -float(r["count_15m"]))
            return rows

        listeners = []
        for key in sorted(h.keys("intake"), key=str):
            total = h.total(key, n)
            listeners.append({"listener": key[1], **{
                f"{c}_per_second": _none(total[i] / span) if span else None for i, c in enumerate(INTAKE)},
                "spark": {"lines": _spark([v / h.step if v == v else NAN for v in h.column(key, 1)])}})
        otlp = []
        for key in sorted(h.keys("otlp"), key=str):
            total = h.total(key, n)
            otlp.append({"transport": key[1],
                         "requests_per_second": _none(total[0] / span) if span else None,
                         "data_points_per_second": _none(total[1] / span) if span else None,
                         "spark": {"data_points": _spark([v / h.step if v == v else NAN for v in h.column(key, 1)])}})
        return {"listeners": listeners, "parse_errors": counted("parse"), "dropped": counted("dropped"),
                "tcp_errors": counted("tcp"), "auth_failures": counted("auth"), "otlp": otlp,
                "kernel_drops": counted("kernel"),
                "otlp_rejected": counted("otlp_rejected")}

    def _reload(self) -> dict[str, Any] | None:
        last = self.history.last(("reload",))
        if not last:
            return None
        total = self.history.total(("reload",), self.history.points)
        # Row: reloads ok, failed (deltas), then last_successful, last success time.
        return {"last_reload_successful": bool(last[2] == 1), "last_success_at": _none(last[3]),
                "reloads_15m": _none(total[0]), "failures_15m": _none(total[1])}

    def _self(self, steps: dict[str, int], spans: dict[str, float]) -> dict[str, Any] | None:
        last = self.history.last(("self",))
        if not last:
            return None
        span = spans[HEADLINE]
        cpu = self.history.total(("self",), steps[HEADLINE])[0]  # row: cpu (delta), rss, series
        return {"resident_memory_bytes": _none(last[1]), "cpu_cores": _none(cpu / span) if span else None,
                "series": _none(last[2]), "spark": {"rss": _spark(self.history.column(("self",), 1))}}

