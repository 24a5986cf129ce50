"""The status page as one self-contained HTML document: tables, inline SVG sparklines, no assets.

Server-rendered from the status model (model.py) or from a saved report (the
same keys, without windows and sparklines). Nothing is loaded from anywhere:
the stylesheet and the refresh script are inline and allowed by their SHA-256
in the Content-Security-Policy (`CSP` in assets.py, sent as a header by the daemon and
repeated in a meta tag so a saved file keeps it). The script refreshes the
page in place: it fetches the same URL every few seconds and swaps `<main>`.
`compare_page` draws `report --compare` as before/after latency bars.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from exporter.status.assets import META_CSP, REFRESH_SECONDS, SCRIPT, STYLE
from exporter.tools.formats import ms, num, pct

MAX_ROWS = 50  # operations and targets shown (slowest and down first); the JSON has all of them

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})


def esc(value: object) -> str:
    return str(value).translate(_ESCAPES)


# --- small pieces --------------------------------------------------------------------------


def sparkline(values: Sequence[float | None] | None, css: str = "") -> str:
    """An inline SVG line over the history, gaps where there was no value; '' when nothing to draw."""
    if not values:
        return ""
    known = [v for v in values if v is not None and math.isfinite(v)]
    if len(known) < 2:
        return ""
    lo, hi = min(known), max(known)
    last = len(values) - 1
    if hi == lo and len(known) == len(values):  # flat and complete: two points draw it
        d = f"M0 50L{last} 50"
    else:
        scale = 98 / (hi - lo) if hi > lo else 0.0
        parts, pen = [], "M"
        for x, v in enumerate(values):
            if v is None or not math.isfinite(v):
                pen = "M"
                continue
            parts.append(f"{pen}{x} {99 - int((v - lo) * scale + 0.5) if scale else 50}")
            pen = "L"
        d = "".join(parts)
    klass = f"spark {css}".strip()
    return (f'<svg class="{klass}" viewBox="0 0 {max(last, 1)} 100" preserveAspectRatio="none" '
            f'role="img" aria-label="trend"><path d="{d}" vector-effect="non-scaling-stroke"/></svg>')


def _rate(value: float | None) -> str:
    return num(value, 2) if value is not None and value < 100 else num(value, 0)


def _bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def _ago(at: float | None, now: float) -> str:
    if at is None:
        return "never (in the history)"
    seconds = max(0.0, now - at)
    if seconds < 90:
        return f"{seconds:.0f}s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], row_class: Callable[[int], str] | None = None
           ) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        klass = row_class(i) if row_class else ""
        attr = f' class="{klass}"' if klass else ""
        body.append(f"<tr{attr}>" + "".join(row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _td(text: str, css: str = "") -> str:
    return f'<td class="{css}">{text}</td>' if css else f"<td>{text}</td>"


def _section(title: str, content: str, wide: bool = False, ident: str = "") -> str:
    attrs = (' class="wide"' if wide else "") + (f' id="{ident}"' if ident else "")
    return f"<section{attrs}><h2>{esc(title)}</h2>{content}</section>"


def _window(row: dict[str, Any], name: str, key: str) -> float | None:
    w = row.get("windows", {}).get(name)
    return w.get(key) if w else None


# --- sections --------------------------------------------------------------------------------


def _health(status: dict[str, Any]) -> str:
    hs = status.get("health") or {"score": None, "penalties": []}
    score = hs["score"]
    grade = "good" if score is not None and score >= 90 else "fair" if score is not None and score >= 70 else "poor"
    reasons = "".join(f"<li>−{p['points']} {esc(p['reason'])}</li>" for p in hs["penalties"])
    reasons = f'<ul class="reasons">{reasons}</ul>' if reasons else '<span class="dim">no penalties</span>'
    return (f'<div id="health"><span class="score {grade}" title="health score">{esc(score)}</span>'
            f"</div><div>{reasons}</div>")


def _operations(status: dict[str, Any], limit: int) -> str:
    ops = status.get("operations", [])
    if not ops:
        return _section("Operations", '<p class="dim">No operations observed yet.</p>', wide=True, ident="operations")
    windowed = any("windows" in o for o in ops)
    header = ["operation", "rate/s", "count", "errors", "p50", "p95", "p99"]
    if windowed:
        header += ["p99 1m", "p99 15m", "rate/s 1m", "rate/s 15m", "rate trend", "p99 trend"]
    rows = []
    for o in ops[:limit]:
        row = [_td(esc(o["operation"])), _td(_rate(o.get("rate"))), _td(num(o.get("count"), 0)),
               _td(pct(o.get("error_ratio"))), _td(ms(o.get("p50"))), _td(ms(o.get("p95"))),
               _td(ms(o.get("p99")), "p99")]
        if windowed:
            spark = o.get("spark", {})
            row += [_td(ms(_window(o, "1m", "p99"))), _td(ms(_window(o, "15m", "p99"))),
                    _td(_rate(_window(o, "1m", "rate"))), _td(_rate(_window(o, "15m", "rate"))),
                    _td(sparkline(spark.get("rate"))), _td(sparkline(spark.get("p99"), "p99"))]
        rows.append(row)
    more = (f'<p class="dim">{len(ops) - limit} more operations (faster ones) in /api/v1/status.</p>'
            if len(ops) > limit else "")
    label = f"Operations, slowest first (last {_window_name(status)})"
    return _section(label, _table(header, rows) + more, wide=True, ident="operations")


def _window_name(status: dict[str, Any]) -> str:
    seconds = status.get("window_seconds")
    if not seconds:
        return "totals since start"
    return f"{seconds / 60:.1f} min" if seconds >= 600 else f"{seconds:.1f} s"


def _caches(status: dict[str, Any]) -> str:
    caches = status.get("caches", [])
    if not caches:
        return ""
    rows = [[_td(esc(c["cache"])), _td(esc(c["level"] or "-")), _td(pct(c.get("hit_ratio"), 1)),
             _td(_rate(c.get("lookup_rate"))), _td(_rate(c.get("eviction_rate"))), _td(num(c.get("entries"), 0)),
             _td(pct(c.get("fill_ratio"), 1)), _td(sparkline(c.get("spark", {}).get("hit_ratio")))]
            for c in caches]
    return _section("Caches", _table(["cache", "level", "hit ratio", "lookups/s", "evictions/s", "entries", "fill",
                                      "hit ratio trend"], rows), wide=True, ident="caches")


def _pools(status: dict[str, Any]) -> str:
    pools = status.get("pools", [])
    if not pools:
        return ""
    rows = [[_td(esc(p["pool"])), _td(f"{num(p.get('active'), 0)} / {num(p.get('max'), 0)}"),
             _td(pct(p.get("utilisation"), 0)), _td(num(p.get("waiting"), 0)), _td(ms(p.get("wait_p99"))),
             _td(_rate(p.get("timeout_rate"))), _td(sparkline(p.get("spark", {}).get("active")))]
            for p in pools]
    return _section("Pools", _table(["pool", "in use / max", "utilisation", "waiting", "wait p99", "timeouts/s",
                                     "in use trend"], rows), wide=True, ident="pools")


def _queues(status: dict[str, Any]) -> str:
    queues = status.get("queues", [])
    if not queues:
        return ""
    rows = []
    for q in queues:
        trend = q.get("depth_trend_per_second")
        rows.append([_td(esc(q["queue"])), _td(num(q.get("depth"), 0)),
                     _td("-" if trend is None else f"{trend:+.2f}/s"), _td(num(q.get("consumer_lag"), 0)),
                     _td(_rate(q.get("batch_items_rate"))), _td(pct(q.get("batch_error_ratio"), 1)),
                     _td(sparkline(q.get("spark", {}).get("depth")))])
    return _section("Queues", _table(["queue", "depth", "trend", "consumer lag", "batch items/s", "batch errors",
                                      "depth trend"], rows), wide=True, ident="queues")


def _host(status: dict[str, Any]) -> str:
    h = status.get("host") or {}
    c = status.get("container")
    lines = []
    spark = h.get("spark", {})
    if h.get("cpu_busy_ratio") is not None:
        extra = f", {num(h.get('cpus'), 0)} CPUs" if h.get("cpus") else ""
        extra += f", load1 {num(h.get('load1'), 2)}" if h.get("load1") is not None else ""
        lines.append([_td("CPU busy"), _td(pct(h["cpu_busy_ratio"], 1) + esc(extra)),
                      _td(sparkline(spark.get("cpu_busy_ratio")))])
    if h.get("memory_used_ratio") is not None:
        lines.append([_td("memory used"), _td(f"{pct(h['memory_used_ratio'], 1)} of {_bytes(h.get('memory_total_bytes'))}"),
                      _td(sparkline(spark.get("memory_used_ratio")))])
    for d in h.get("filesystems", []):
        lines.append([_td(f"disk {esc(d['mountpoint'])}"),
                      _td(f"{pct(d['used_ratio'], 1)} used, {_bytes(d.get('avail_bytes'))} free"), _td("")])
    for what, key in (("network in", "net_rx"), ("network out", "net_tx"), ("disk read", "disk_read"),
                      ("disk written", "disk_written")):
        v = h.get(f"{key}_bytes_per_second")
        if v is not None:
            lines.append([_td(what), _td(_bytes(v) + "/s"), _td("")])
    if c:
        limit = c.get("memory_limit_bytes")
        mem = _bytes(c.get("memory_working_set_bytes")) + (
            f" of {_bytes(limit)} limit ({pct(c.get('memory_limit_ratio'), 1)})" if limit else " (no limit)")
        lines.append([_td("container memory"), _td(mem),
                      _td(sparkline(c.get("spark", {}).get("memory_working_set_bytes")))])
        cores = c.get("cpu_cores")
        if cores is not None:
            lim = c.get("cpu_limit_cores")
            lines.append([_td("container CPU"), _td(f"{cores:.2f} cores" + (f" of {lim:g}" if lim else "")), _td("")])
    if not lines:
        return ""
    return _section("Host and container", _table(["", "now", "trend"], lines), ident="host")


def _targets(status: dict[str, Any], now: float, limit: int) -> str:
    targets = status.get("targets")
    if targets is None:  # a report: only the targets that were down
        down = status.get("targets_down", [])
        if not down:
            return ""
        rows = [[_td(esc(t["collector"])), _td(esc(t["target"])), _td("DOWN", "down")] for t in down]
        return _section("Probe targets down", _table(["probe", "target", "up"], rows), ident="targets")
    if not targets:
        return ""
    rows = []
    for t in targets[:limit]:
        up = t.get("up") == 1
        rows.append([_td(esc(t["collector"])), _td(esc(t["target"])), _td("up" if up else "DOWN", "up" if up else "down"),
                     _td(_ago(t.get("last_success_at"), now)), _td(ms(t.get("duration_seconds"))),
                     _td(esc(t.get("last_error") or "") if not up else "", "err"),
                     _td(sparkline(t.get("spark", {}).get("up"), "" if up else "bad"))])
    more = f'<p class="dim">{len(targets) - limit} more targets (up) in /api/v1/status.</p>' if len(targets) > limit else ""
    return _section("Probe targets", _table(["probe", "target", "state", "last success", "duration", "last error",
                                             "up trend"], rows) + more, wide=True, ident="targets")


def _collectors(status: dict[str, Any]) -> str:
    collectors = status.get("collectors", [])
    if not collectors:
        return ""
    rows = [[_td(esc(c["collector"])), _td(ms(c.get("duration_seconds"))),
             _td("ok" if c.get("success") == 1 else "FAILED", "up" if c.get("success") == 1 else "down"),
             _td(sparkline(c.get("spark", {}).get("duration_seconds")))] for c in collectors]
    return _section("Collectors", _table(["collector", "duration", "last run", "duration trend"], rows), ident="collectors")


def _statsd(status: dict[str, Any]) -> str:
    s = status.get("statsd")
    if not s:
        return ""
    parts = []
    if s["listeners"]:
        parts.append(_table(["listener", "packets/s", "lines/s", "samples/s", "bytes/s", "lines/s trend"], [
            [_td(esc(x["listener"])), _td(_rate(x["packets_per_second"])), _td(_rate(x["lines_per_second"])),
             _td(_rate(x["samples_per_second"])), _td(_bytes(x["bytes_per_second"])),
             _td(sparkline(x["spark"]["lines"]))] for x in s["listeners"]]))
    if s.get("otlp"):
        parts.append(_table(["OTLP transport", "requests/s", "data points/s", "data points/s trend"], [
            [_td(esc(x["transport"])), _td(_rate(x["requests_per_second"])), _td(_rate(x["data_points_per_second"])),
             _td(sparkline(x["spark"]["data_points"]))] for x in s["otlp"]]))
    for title, key in (("parse errors", "parse_errors"), ("samples dropped", "dropped"),
                       ("kernel drops (full receive buffer)", "kernel_drops"),
                       ("TCP errors", "tcp_errors"), ("OTLP rejected", "otlp_rejected"),
                       ("HTTP auth failures", "auth_failures")):
        rows = [r for r in s.get(key, []) if r["count_15m"] > 0]  # reasons that happened
        if rows:
            parts.append(_table([title + (" by listener" if key == "kernel_drops" else " by reason"),
                                 "last 5 min", "last 15 min", "per step"], [
                [_td(esc(r["reason"])), _td(num(r["count"], 0)), _td(num(r["count_15m"], 0)),
                 _td(sparkline(r["spark"]["count"], "bad"))] for r in rows]))
    if not parts:
        return ""
    return _section("Intake: StatsD and OTLP", "".join(parts), ident="statsd")


def _daemon(status: dict[str, Any], now: float) -> str:
    rows = []
    r = status.get("reload")
    if r:
        state = ('<span class="up">last reload succeeded</span>' if r["last_reload_successful"]
                 else '<span class="down">last reload FAILED (the previous config still runs)</span>')
        rows.append([_td("configuration"), _td(state)])
        rows.append([_td("last successful load"), _td(_ago(r.get("last_success_at"), now))])
        rows.append([_td("reloads (15 min)"), _td(f"{num(r.get('reloads_15m'), 0)} ok, "
                                                 f"{num(r.get('failures_15m'), 0)} failed")])
    e = status.get("exporter")
    if e:
        rows.append([_td("resident memory"), _td(_bytes(e.get("resident_memory_bytes")) + " "
                                                 + sparkline(e.get("spark", {}).get("rss")))])
        if e.get("cpu_cores") is not None:
            rows.append([_td("CPU"), _td(f"{e['cpu_cores'] * 100:.1f}% of a core")])
        rows.append([_td("pushed series"), _td(num(e.get("series"), 0))])
    hist = status.get("history")
    if hist:
        rows.append([_td("history"), _td(f"{hist['samples']} of {hist['points']} samples every "
                                         f"{hist['step_seconds']:g}s, {hist['keys']} rows, {_bytes(hist['bytes'])}")])
    if not rows:
        return ""
    return _section("Exporter", _table(["", ""], rows), ident="exporter")


# --- the documents -----------------------------------------------------------------------------


def _document(title: str, header: str, main: str, live: bool) -> bytes:
    script = f"<script>{SCRIPT}</script>" if live else ""
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{esc(META_CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'  # or the browser asks for /favicon.ico (a 404 in its console)
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<header>{header}</header><main>{main}</main>{script}</body></html>\n"
    ).encode()


def render(status: dict[str, Any], links: Sequence[tuple[str, str]] = (), live: bool = False,
           max_rows: int = MAX_ROWS) -> bytes:
    """The page; `live` adds the refresh script (the daemon's page, not a saved file)."""
    now = time.time()
    generated = status.get("generated_at", "")
    nav = "".join(f'<a href="{esc(href)}">{esc(text)}</a>' for href, text in links)
    refresh = (f'<span id="refresh" class="dim">refreshes every {REFRESH_SECONDS}s</span>' if live
               else f'<span class="dim">{esc(status.get("source", ""))}</span>')
    header = (f"<h1>apm-exporter</h1><span class=\"dim\">{esc(status.get('version', ''))}</span>"
              f"{_health(status)}<span class=\"dim\">as of {esc(generated)}</span>{refresh}"
              + (f"<nav>{nav}</nav>" if nav else ""))
    main = "".join((_operations(status, max_rows), _targets(status, now, max_rows), _caches(status), _pools(status),
                    _queues(status), _host(status), _statsd(status), _collectors(status), _daemon(status, now)))
    return _document("apm-exporter status", header, main, live)


# --- report --compare as a picture ----------------------------------------------------------------


def _bars(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """Per operation: p50, p95 and p99 before (grey) and after (blue; red when slower)."""
    values = [d[k] for _, o in rows for q in ("p50", "p95", "p99") for k in ("before", "after")
              if (d := o[q])[k] is not None]
    top = max(values, default=0.0) or 1.0
    width, label, row_h = 760, 150, 14
    y, parts = 4, []
    for name, o in rows:
        parts.append(f'<text x="0" y="{y + 12}">{esc(name)}</text>')
        for q in ("p50", "p95", "p99"):
            d = o[q]
            parts.append(f'<text x="{label - 30}" y="{y + 11}">{q}</text>')
            for k in ("before", "after"):
                v = d[k]
                if v is None:
                    y += row_h // 2
                    continue
                w = max(1, round((width - label - 90) * v / top))
                css = k if k == "before" or d["before"] is None or v <= d["before"] else "worse"
                parts.append(f'<rect class="{css}" x="{label}" y="{y}" width="{w}" height="{row_h // 2 - 1}">'
                             f"<title>{q} {k}: {ms(v)}</title></rect>")
                parts.append(f'<text x="{label + w + 4}" y="{y + 6}">{ms(v)}</text>')
                y += row_h // 2
            y += 2
        y += 8
    return (f'<svg class="bars" viewBox="0 0 {width} {y}" role="img" aria-label="latency before and after">'
            f"{''.join(parts)}</svg>")


def compare_page(c: dict[str, Any]) -> bytes:
    def when(side: dict[str, Any]) -> str:
        return f"{esc(side.get('source'))} at {esc(side.get('generated_at'))}"

    hs = c["health"]
    header = (f"<h1>apm-exporter: before and after</h1><div>health {esc(_score(hs['before']))} → "
              f"{esc(_score(hs['after']))}</div><div class=\"dim\">before: {when(c['before'])}<br>"
              f"after: {when(c['after'])}</div>")
    ops = [(o["operation"], o) for o in c.get("operations", [])]
    rows = [[_td(esc(name)), _td(f"{_rate(o['rate']['before'])} → {_rate(o['rate']['after'])}"),
             _td(f"{pct(o['error_ratio']['before'])} → {pct(o['error_ratio']['after'])}"),
             *(_td(f"{ms(o[q]['before'])} → {ms(o[q]['after'])}{_change(o[q])}") for q in ("p50", "p95", "p99"))]
            for name, o in ops]
    main = _section("Operation latency, before (grey) and after (blue, red where slower)",
                    _bars(ops) if ops else '<p class="dim">No operations in either report.</p>', wide=True,
                    ident="bars")
    if ops:
        main += _section("Operations", _table(["operation", "rate/s", "errors", "p50", "p95", "p99"], rows),
                         wide=True, ident="operations")
    return _document("apm-exporter: before and after", header, main, live=False)


def _score(v: float | None) -> str:
    return "-" if v is None else str(int(v))


def _change(d: dict[str, Any]) -> str:
    r = d.get("change_ratio")
    return "" if r is None else f" ({r * 100:+.0f}%)"

