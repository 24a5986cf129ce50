"""`apm-exporter loadtest`: drive an HTTP URL or a Python callable with a shaped, bounded load.

Workers (fixed concurrency) take request slots from a rate schedule
(tools/schedule.py); each HTTP worker keeps one keep-alive connection
(asyncio + h11). http.client in threads drives about as many requests per
second (BENCHMARKS.md, "Load generator"), but asyncio cancels in-flight
requests at once on Ctrl-C, times out each request without a thread per
worker, and awaits async callables natively. Every run is bounded: by a
request count, a duration, or the default duration cap.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import os
import signal
import socket
import ssl
import sys
import time
import urllib.parse
from array import array
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import h11

from exporter import __version__
from exporter.tools import schedule as sched
from exporter.tools._cli import (
    duration,
    ms,
    nan_to_none,
    non_negative,
    num,
    pct,
    positive_int,
    table,
)
from exporter.tools.stats import LiveHistogram, Window, percentile

DEFAULT_DURATION = 10.0        # when neither --requests nor --duration is given
DEFAULT_STEP_DURATION = 60.0   # a step-up run needs several steps to find anything
MAX_DURATION = 24 * 3600.0     # hard cap on --duration and --max-duration
MAX_REQUESTS = 100_000_000     # hard cap on --requests (latencies are kept: 8 bytes each)
MAX_CONCURRENCY = 10_000
MAX_ERROR_KINDS = 100          # distinct error texts kept; the rest count as "other"
STATSD_DATAGRAM = 1432         # fits one Ethernet frame with IPv4/IPv6 and UDP headers
EXIT_INTERRUPTED = 130


class Client(Protocol):
    """One worker's way to make one request: returns None on success, else an error text."""

    async def call(self) -> str | None: ...

    async def close(self) -> None: ...


# --- HTTP -------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpSpec:
    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    timeout: float = 10.0
    ok_status: tuple[tuple[int, int], ...] = ((200, 399),)
    insecure: bool = False

    def parts(self) -> tuple[str, int, bool, str]:
        u = urllib.parse.urlsplit(self.url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"not an http(s) URL: {self.url!r}")
        tls = u.scheme == "https"
        target = (u.path or "/") + (f"?{u.query}" if u.query else "")
        return u.hostname, u.port or (443 if tls else 80), tls, target


class HttpClient:
    """One keep-alive HTTP/1.1 connection, reopened after an error or `Connection: close`."""

    def __init__(self, spec: HttpSpec) -> None:
        self.spec = spec
        self.host, self.port, tls, self.target = spec.parts()
        self.ssl: ssl.SSLContext | None = None
        if tls:
            self.ssl = ssl.create_default_context()
            if spec.insecure:
                self.ssl.check_hostname = False
                self.ssl.verify_mode = ssl.CERT_NONE
        default_port = 443 if tls else 80
        host_header = self.host if self.port == default_port else f"{self.host}:{self.port}"
        if ":" in self.host and not self.host.startswith("["):
            host_header = f"[{self.host}]" if self.port == default_port else f"[{self.host}]:{self.port}"
        names = {k.lower() for k, _ in spec.headers}
        headers = list(spec.headers)
        if "host" not in names:
            headers.insert(0, ("Host", host_header))
        if "user-agent" not in names:
            headers.append(("User-Agent", f"apm-exporter-loadtest/{__version__}"))
        if spec.body or spec.method in ("POST", "PUT", "PATCH"):
            headers.append(("Content-Length", str(len(spec.body))))
        self.headers = headers
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._conn: h11.Connection | None = None

    async def call(self) -> str | None:
        try:
            async with asyncio.timeout(self.spec.timeout):
                status = await self._exchange()
        except TimeoutError:  # before OSError: TimeoutError is one
            await self.close()
            return "timeout"
        except (OSError, EOFError, h11.ProtocolError) as err:
            await self.close()
            return _error_text(err)
        if any(lo <= status <= hi for lo, hi in self.spec.ok_status):
            return None
        return f"HTTP {status}"

    async def _exchange(self) -> int:
        if self._writer is None or self._conn is None:
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.ssl else None)
            self._conn = h11.Connection(h11.CLIENT)
        conn, reader, writer = self._conn, self._reader, self._writer
        assert reader is not None
        data = conn.send(h11.Request(method=self.spec.method, target=self.target, headers=self.headers))
        if self.spec.body:
            data += conn.send(h11.Data(data=self.spec.body))
        data += conn.send(h11.EndOfMessage())
        writer.write(data)
        await writer.drain()
        status = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise EOFError("connection closed before the response ended")
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        else:
            await self.close()
        return status

    async def close(self) -> None:
        writer, self._writer, self._reader, self._conn = self._writer, None, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, ssl.SSLError):
                pass


# --- Python callables --------------------------------------------------------------


class CallableClient:
    """Calls `module:function`: awaited if async, else run in a thread of a shared pool."""

    def __init__(self, fn: Callable[[], Any], timeout: float, executor: ThreadPoolExecutor) -> None:
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.timeout = timeout
        self.executor = executor

    async def call(self) -> str | None:
        try:
            if self.is_async:
                async with asyncio.timeout(self.timeout):
                    await self.fn()
            else:
                loop = asyncio.get_running_loop()
                await asyncio.wait_for(loop.run_in_executor(self.executor, self.fn), self.timeout)
        except TimeoutError:
            return "timeout"
        except Exception as err:  # noqa: BLE001 - the callable's own failures are what we measure
            return _error_text(err)
        return None

    async def close(self) -> None:
        return None


def load_callable(spec: str) -> Callable[[], Any]:
    """`package.module:function` → the function (the current directory is importable)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"expected module:function, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import {module_name!r}: {err}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise ValueError(f"{spec!r} is not callable")  # noqa: TRY004 - reported as a usage error
    return obj  # type: ignore[no-any-return]


def _error_text(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    name = type(err).__name__
    return (f"{name}: {text}" if text else name)[:200]


# --- StatsD -------------------------------------------------------------------------


class StatsdSink:
    """Sends each latency as `apm.operation:<ms>|ms|#operation:<name>,outcome:ok|error`.

    Lines are batched into datagrams of at most STATSD_DATAGRAM bytes; a send
    that fails (no listener yet, buffer full) is counted, never raised.
    """

    def __init__(self, address: str, operation: str) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--statsd wants HOST:PORT, got {address!r}")
        host = host.strip("[]")
        family, _, _, _, sockaddr = socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)[0]
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.connect(sockaddr)
        self.ok_suffix = f"|ms|#operation:{operation},outcome:ok".encode()
        self.error_suffix = f"|ms|#operation:{operation},outcome:error".encode()
        self.buffer: list[bytes] = []
        self.size = 0
        self.lines = self.datagrams = self.send_errors = 0

    def add(self, seconds: float, ok: bool) -> None:
        line = b"apm.operation:%.3f" % (seconds * 1000.0) + (self.ok_suffix if ok else self.error_suffix)
        if self.size + len(line) + 1 > STATSD_DATAGRAM:
            self.flush()
        self.buffer.append(line)
        self.size += len(line) + 1

    def flush(self) -> None:
        if not self.buffer:
            return
        lines, self.buffer, self.size = self.buffer, [], 0
        try:
            self.sock.send(b"\n".join(lines))
            self.lines += len(lines)
            self.datagrams += 1
        except OSError:
            self.send_errors += 1

    def close(self) -> None:
        self.flush()
        self.sock.close()

    def summary(self) -> dict[str, int]:
        return {"lines_sent": self.lines, "datagrams": self.datagrams, "send_errors": self.send_errors}


# --- the run ------------------------------------------------------------------------


@dataclass
class Plan:
    """What to run: shape, bounds, limits. `schedule is None` means no rate limit."""

    target: str
    shape: str
    concurrency: int
    duration: float
    requests: int | None
    schedule: sched.Schedule | None
    max_error_ratio: float = 0.01
    max_p99: float = 1.0
    description: dict[str, Any] = field(default_factory=dict)


class Run:
    """Workers, their results and the run's control (stop on bound, breaking point or SIGINT)."""

    def __init__(self, plan: Plan, make_client: Callable[[], Client], statsd: StatsdSink | None = None,
                 progress: bool = False) -> None:
        self.plan = plan
        self.make_client = make_client
        self.statsd = statsd
        self.progress = progress
        self.latencies = array("d")
        self.failed = 0
        self.errors: Counter[str] = Counter()
        self.timeline: dict[int, list[int]] = {}
        self.live = LiveHistogram()
        self.window = Window()
        self.steps: list[dict[str, Any]] = []
        self.breaking_point: dict[str, Any] | None = None
        self.stop_reason = ""
        self.interrupted = False
        self._next = 0
        self._workers: list[asyncio.Task[None]] = []
        self._start = 0.0
        self._end: float | None = None

    # control
    def halt(self, reason: str) -> None:
        if not self.stop_reason:
            self.stop_reason = reason
        self._end = self._end or time.perf_counter()
        for task in self._workers:
            task.cancel()

    def interrupt(self) -> None:
        self.interrupted = True
        self.halt("interrupted (SIGINT)")

    async def execute(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        handled = False
        try:
            loop.add_signal_handler(signal.SIGINT, self.interrupt)
            handled = True
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
            pass
        self._start = time.perf_counter()
        clients = [self.make_client() for _ in range(self.plan.concurrency)]
        self._workers = [asyncio.create_task(self._worker(c)) for c in clients]
        helpers = [asyncio.create_task(self._ticker())]
        if self.plan.schedule is not None and self.plan.schedule.step:
            helpers.append(asyncio.create_task(self._judge_steps(self.plan.schedule.step)))
        try:
            await asyncio.gather(*self._workers, return_exceptions=True)
        finally:
            self._end = self._end or time.perf_counter()
            for h in helpers:
                h.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
            if handled:
                loop.remove_signal_handler(signal.SIGINT)
            if self.statsd:
                self.statsd.flush()
            if self.progress:
                sys.stderr.write("\r\x1b[K")
                sys.stderr.flush()
        if not self.stop_reason:
            self.stop_reason = ("request count reached" if self.plan.requests is not None
                                and self._next >= self.plan.requests else "duration reached")
        return self.result()

    async def _worker(self, client: Client) -> None:
        plan, schedule = self.plan, self.plan.schedule
        while True:
            n = self._next
            if plan.requests is not None and n >= plan.requests:
                return
            now = time.perf_counter() - self._start
            if schedule is not None:
                at = schedule.time_of(n)
                if at is None:
                    return
                self._next += 1
                if at > now:
                    await asyncio.sleep(at - now)
                elif now >= plan.duration:
                    # Behind schedule at the end: the run is bounded in time, not in tokens.
                    return
            else:
                if now >= plan.duration:
                    return
                self._next += 1
            started = time.perf_counter()
            error = await client.call()
            self._record(started - self._start, time.perf_counter() - started, error)

    def _record(self, started: float, elapsed: float, error: str | None) -> None:
        self.latencies.append(elapsed)
        self.live.add(elapsed)
        slot = self.timeline.get(int(started))
        if slot is None:
            slot = self.timeline[int(started)] = [0, 0]
        slot[0] += 1
        if error is not None:
            self.failed += 1
            slot[1] += 1
            if error in self.errors or len(self.errors) < MAX_ERROR_KINDS:
                self.errors[error] += 1
            else:
                self.errors["other"] += 1
        self.window.add(elapsed, error is None)
        if self.statsd:
            self.statsd.add(elapsed, error is None)

    async def _ticker(self) -> None:
        """Progress line (TTY only) and StatsD flushes; also enforces the time bound."""
        deadline = self.plan.duration
        while True:
            await asyncio.sleep(0.2 if self.statsd else 0.5)
            elapsed = time.perf_counter() - self._start
            if self.statsd:
                self.statsd.flush()
            if self.progress:
                sys.stderr.write("\r\x1b[K" + self.progress_line(elapsed))
                sys.stderr.flush()
            # Requests in flight at the deadline may finish within their timeout; not longer.
            if elapsed > deadline + _timeout_of(self.make_client) + 1.0:
                self.halt("duration reached")

    def progress_line(self, elapsed: float) -> str:
        total = len(self.latencies)
        rate = total / elapsed if elapsed > 0 else 0.0
        errors = f"{self.failed} errors ({pct(self.failed / total if total else 0.0, 1)})"
        target = ""
        if self.plan.schedule is not None:
            at = min(elapsed, self.plan.schedule.duration - 1e-6)
            target = f" (target {self.plan.schedule.rate(at):,.0f})"
        return (f"{elapsed:6.1f}s  {total:,} requests  {rate:,.1f} req/s{target}  {errors}  "
                f"p95 {ms(self.live.percentile(95))}")

    async def _judge_steps(self, step: float) -> None:
        """Step-up: at the end of each step, judge the requests completed in it."""
        schedule = self.plan.schedule
        assert schedule is not None
        k = 0
        while (k + 1) * step <= schedule.duration + 1e-9:
            boundary = self._start + (k + 1) * step
            await asyncio.sleep(max(0.0, boundary - time.perf_counter()))
            window, self.window = self.window, Window()
            target = schedule.rate(k * step + step / 2)
            achieved = window.count / step
            p99 = window.p(99)
            verdict = "ok"
            if window.error_ratio() > self.plan.max_error_ratio:
                verdict = f"error ratio {pct(window.error_ratio())} > {pct(self.plan.max_error_ratio)}"
            elif window.count and p99 > self.plan.max_p99:
                verdict = f"p99 {ms(p99)} > {ms(self.plan.max_p99)}"
            elif window.count < 0.9 * target * step - 2:
                verdict = f"served {achieved:,.1f} of {target:,.1f} req/s"
            self.steps.append({"step": k + 1, "target_rate": target, "achieved_rate": achieved,
                               "requests": window.count, "errors": window.errors,
                               "error_ratio": window.error_ratio(), "p99_seconds": nan_to_none(p99),
                               "verdict": verdict})
            if verdict != "ok":
                last_good = self.steps[-2]["target_rate"] if len(self.steps) > 1 else None
                self.breaking_point = {"rate": target, "reason": verdict, "last_good_rate": last_good}
                self.halt(f"breaking point at {target:,.1f} req/s")
                return
            k += 1

    def result(self) -> dict[str, Any]:
        end = self._end or time.perf_counter()
        elapsed = max(end - self._start, 1e-9)
        values = sorted(self.latencies)
        total = len(values)
        schedule = self.plan.schedule
        timeline = []
        for second in range(max(self.timeline, default=-1) + 1):
            requests, errors = self.timeline.get(second, [0, 0])
            row: dict[str, Any] = {"second": second, "requests": requests, "errors": errors}
            if schedule is not None:
                row["target_requests"] = schedule.tokens(second + 1) - schedule.tokens(second)
            timeline.append(row)
        latency = {
            "min": values[0] if values else None,
            "avg": sum(values) / total if total else None,
            **{f"p{p}": nan_to_none(percentile(values, p)) for p in (50, 90, 95, 99)},
            "max": values[-1] if values else None,
        }
        out: dict[str, Any] = {
            "target": self.plan.target,
            **self.plan.description,
            "shape": self.plan.shape,
            "concurrency": self.plan.concurrency,
            "elapsed_seconds": elapsed,
            "interrupted": self.interrupted,
            "stop_reason": self.stop_reason,
            "requests": {"total": total, "ok": total - self.failed, "failed": self.failed},
            "rate": total / elapsed,
            "error_ratio": self.failed / total if total else 0.0,
            "latency_seconds": latency,
            "errors": [{"error": e, "count": c} for e, c in self.errors.most_common(10)],
            "timeline": timeline,
        }
        if self.steps:
            out["steps"] = self.steps
            out["breaking_point"] = self.breaking_point
        if self.statsd:
            out["statsd"] = self.statsd.summary()
        return out


def _timeout_of(make_client: Callable[[], Client]) -> float:
    return float(getattr(make_client, "timeout", 10.0))


# --- output -------------------------------------------------------------------------


def render(result: dict[str, Any]) -> str:
    """The human report: what ran, counts, rate, latency percentiles, top errors."""
    r, lat = result["requests"], result["latency_seconds"]
    lines = [
        f"Target:      {result['target']}" + (f" ({result['method']})" if result.get("method") else ""),
        f"Load:        {result['shape']}, concurrency {result['concurrency']}"
        + (f", {result['rate_plan']}" if result.get("rate_plan") else ""),
        f"Elapsed:     {result['elapsed_seconds']:.2f}s ({result['stop_reason']})",
        "",
        table(["requests", "total", "ok", "failed", "error ratio", "rate"],
              [["", f"{r['total']:,}", f"{r['ok']:,}", f"{r['failed']:,}", pct(result["error_ratio"]),
                f"{num(result['rate'])} req/s"]]),
        "",
        table(["latency", "min", "avg", "p50", "p90", "p95", "p99", "max"],
              [["", *(ms(lat[k]) for k in ("min", "avg", "p50", "p90", "p95", "p99", "max"))]]),
    ]
    if result["errors"]:
        lines += ["", "Top errors:"]
        lines += [f"  {e['count']:>8,}  {e['error']}" for e in result["errors"]]
    if result.get("steps"):
        lines += ["", "Steps:", table(
            ["step", "target", "achieved", "errors", "p99", "verdict"],
            [[str(s["step"]), f"{num(s['target_rate'])}/s", f"{num(s['achieved_rate'])}/s",
              pct(s["error_ratio"]), ms(s["p99_seconds"]), s["verdict"]] for s in result["steps"]])]
        bp = result.get("breaking_point")
        if bp:
            good = f"; last good step {num(bp['last_good_rate'])} req/s" if bp["last_good_rate"] else ""
            lines.append(f"Breaking point: {num(bp['rate'])} req/s ({bp['reason']}){good}")
        else:
            lines.append("Breaking point: not reached within the run")
    if result.get("statsd"):
        s = result["statsd"]
        lines += ["", (f"StatsD: {s['lines_sent']:,} latencies in {s['datagrams']:,} datagrams"
                       f" ({s['send_errors']} failed sends)")]
    if result["interrupted"]:
        lines += ["", "Interrupted: partial results."]
    return "\n".join(lines) + "\n"


# --- command line -------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="apm-exporter loadtest",
        description="Drive an HTTP URL or a Python callable (module:function) with a fixed concurrency "
                    "and a rate shape; print latency percentiles and errors. Always bounded: "
                    f"--requests, --duration, or {DEFAULT_DURATION:g}s by default.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("target", help="http(s):// URL, or module:function (sync or async, no arguments)")
    g = p.add_argument_group("request (HTTP)")
    g.add_argument("-X", "--method", default="GET", help="HTTP method")
    g.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                   help="request header (repeatable)")
    g.add_argument("--body", help="request body; @FILE reads it from FILE")
    g.add_argument("--ok-status", default="200-399", help="status codes counted as success, e.g. 200-299,404")
    g.add_argument("--insecure", action="store_true", help="do not verify the TLS certificate")
    g.add_argument("--timeout", type=duration, default=10.0, help="per-request timeout (e.g. 2s)")
    g = p.add_argument_group("load and bounds")
    g.add_argument("-c", "--concurrency", type=positive_int, default=10, help="workers (one connection each)")
    g.add_argument("-n", "--requests", type=positive_int, help="stop after this many requests")
    g.add_argument("-d", "--duration", type=duration,
                   help=f"stop after this long (default {DEFAULT_DURATION:g}s, "
                        f"{DEFAULT_STEP_DURATION:g}s for --shape step; or --max-duration with --requests)")
    g.add_argument("--max-duration", type=duration, default=600.0, help="time cap of a --requests run")
    g.add_argument("--shape", choices=["sustained", "ramp", "spike", "step"], default="sustained",
                   help="rate profile")
    g.add_argument("--rate", type=non_negative, default=0.0,
                   help="req/s: sustained rate (0: as fast as the workers go); ramp: end rate; "
                        "spike: base rate; step: first step's rate")
    g.add_argument("--start-rate", type=non_negative, default=0.0, help="ramp: start rate")
    g.add_argument("--ramp-time", type=duration, help="ramp: time to reach --rate (default: the whole run)")
    g.add_argument("--spike-rate", type=non_negative, help="spike: peak rate (default 5 x --rate)")
    g.add_argument("--spike-at", type=non_negative, help="spike: seconds from start (default 40%% of the run)")
    g.add_argument("--spike-duration", type=duration, help="spike: length (default 20%% of the run)")
    g.add_argument("--step-rate", type=non_negative, help="step: increase per step (default --rate)")
    g.add_argument("--step-duration", type=duration, default=5.0, help="step: length of one step")
    g.add_argument("--max-error-ratio", type=non_negative, default=0.01,
                   help="step: a step whose error ratio exceeds this is the breaking point")
    g.add_argument("--max-p99", type=duration, default=1.0,
                   help="step: a step whose p99 latency exceeds this is the breaking point")
    g = p.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print the result as JSON")
    g.add_argument("--no-progress", action="store_true", help="no live progress line on a terminal")
    g.add_argument("--statsd", metavar="HOST:PORT",
                   help="send each latency to the daemon's StatsD listener as an operation")
    g.add_argument("--operation", default="loadtest", help="operation name for --statsd")
    return p


def build_plan(ns: argparse.Namespace) -> Plan:
    """Turn flags into a Plan; ValueError with a readable message on contradictions."""
    if ns.duration is not None and ns.duration > MAX_DURATION:
        raise ValueError(f"--duration may not exceed {MAX_DURATION:g}s")
    if ns.requests is not None and ns.requests > MAX_REQUESTS:
        raise ValueError(f"--requests may not exceed {MAX_REQUESTS:,}")
    if ns.concurrency > MAX_CONCURRENCY:
        raise ValueError(f"--concurrency may not exceed {MAX_CONCURRENCY:,}")
    if ns.duration is not None:
        length = ns.duration
    elif ns.requests is not None:
        length = min(ns.max_duration, MAX_DURATION)
    else:
        length = DEFAULT_STEP_DURATION if ns.shape == "step" else DEFAULT_DURATION
    rate: float = ns.rate
    plan_text = ""
    schedule: sched.Schedule | None
    if ns.shape == "sustained":
        schedule = sched.sustained(rate, length) if rate > 0 else None
        plan_text = f"{rate:g} req/s" if rate > 0 else "unthrottled"
    elif ns.shape == "ramp":
        if rate <= 0:
            raise ValueError("--shape ramp needs --rate (the end rate) > 0")
        ramp_time = ns.ramp_time or length
        schedule = sched.ramp(ns.start_rate, rate, ramp_time, length)
        plan_text = f"{ns.start_rate:g} → {rate:g} req/s over {min(ramp_time, length):g}s"
    elif ns.shape == "spike":
        if rate <= 0:
            raise ValueError("--shape spike needs --rate (the base rate) > 0")
        peak = ns.spike_rate if ns.spike_rate is not None else 5 * rate
        at = ns.spike_at if ns.spike_at is not None else 0.4 * length
        spike_len = ns.spike_duration or 0.2 * length
        schedule = sched.spike(rate, peak, at, spike_len, length)
        plan_text = f"{rate:g} req/s, {peak:g} req/s from {at:g}s for {spike_len:g}s"
    else:
        if rate <= 0:
            raise ValueError("--shape step needs --rate (the first step's rate) > 0")
        increment = ns.step_rate if ns.step_rate is not None else rate
        if increment <= 0:
            raise ValueError("--step-rate must be > 0")
        schedule = sched.step_up(rate, increment, ns.step_duration, length)
        plan_text = f"{rate:g} req/s + {increment:g} every {ns.step_duration:g}s"
    return Plan(target=ns.target, shape=ns.shape, concurrency=ns.concurrency, duration=length,
                requests=ns.requests, schedule=schedule, max_error_ratio=ns.max_error_ratio,
                max_p99=ns.max_p99, description={"rate_plan": plan_text})


def _ok_status(text: str) -> tuple[tuple[int, int], ...]:
    ranges = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            ranges.append((int(lo), int(hi or lo)))
        except ValueError:
            raise ValueError(f"--ok-status: not a status or range: {part!r}") from None
    return tuple(ranges)


def _headers(items: list[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"--header wants 'Name: value', got {item!r}")
        out.append((name.strip(), value.strip()))
    return tuple(out)


def _body(text: str | None) -> bytes:
    if text is None:
        return b""
    if text.startswith("@"):
        try:
            with open(text[1:], "rb") as f:
                return f.read()
        except OSError as err:
            raise ValueError(f"--body: {err}") from None
    return text.encode()


class _ClientFactory:
    """Makes one client per worker; carries the timeout the run's time cap allows for."""

    def __init__(self, make: Callable[[], Client], timeout: float) -> None:
        self.make, self.timeout = make, timeout

    def __call__(self) -> Client:
        return self.make()


def main(argv: list[str]) -> int:
    ns = parser().parse_args(argv)
    try:
        plan = build_plan(ns)
        executor: ThreadPoolExecutor | None = None
        if ns.target.startswith(("http://", "https://")):
            spec = HttpSpec(ns.target, ns.method.upper(), _headers(ns.header), _body(ns.body), ns.timeout,
                            _ok_status(ns.ok_status), ns.insecure)
            spec.parts()
            plan.description["method"] = spec.method
            factory = _ClientFactory(lambda: HttpClient(spec), ns.timeout)
        else:
            fn = load_callable(ns.target)
            executor = ThreadPoolExecutor(max_workers=ns.concurrency, thread_name_prefix="loadtest")
            pool = executor
            factory = _ClientFactory(lambda: CallableClient(fn, ns.timeout, pool), ns.timeout)
        if any(c in ns.operation for c in ",|#:\n") or not ns.operation:
            raise ValueError("--operation may not be empty or contain , | # : or a newline")
        statsd = StatsdSink(ns.statsd, ns.operation) if ns.statsd else None
    except (ValueError, OSError) as err:
        print(f"apm-exporter loadtest: error: {err}", file=sys.stderr)
        return 2
    progress = sys.stderr.isatty() and not ns.no_progress
    run = Run(plan, factory, statsd, progress)
    try:
        result = asyncio.run(run.execute())
    finally:
        if statsd:
            statsd.close()
        if executor:
            executor.shutdown(wait=False, cancel_futures=True)
    if ns.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        sys.stdout.write(render(result))
    sys.stdout.flush()
    return EXIT_INTERRUPTED if result["interrupted"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
