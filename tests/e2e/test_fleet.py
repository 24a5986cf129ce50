"""A fleet on Prometheus's own distribution: sharded agents remote-write to a centre that runs rules/.

Three daemons (distinct instances, overlapping operations) started as a user starts them; two
Prometheus agents (`--enable-feature=agent`) each keep one `hashmod` shard of the targets and
remote-write to a central Prometheus (`--web.enable-remote-write-receiver`) that loads
rules/recording.yml and rules/alerts.yml (configurations: tests/support/fleet.py; docs/deploy.md,
"A fleet", shows them and tests/test_deploy.py keeps the two in step).

Known StatsD traffic goes to each daemon in two steps: one line per series first, so every series
exists at the centre with a known first sample, then the rest. The centre must then hold:

- each target in exactly one agent's shard, the one `hashmod` names (a target in both shards
  keeps its counts, so this is checked on the agents' target lists);
- every sample: per-instance and fleet-wide counts, bucket counts and sums equal to what was
  sent (a target in neither shard, or two instances merged into one, breaks them);
- fleet-wide recording rules and every query of the overview dashboard equal to the sums and
  merged ratios of the per-instance rates the centre holds, to float precision (the rates
  themselves are Prometheus's, extrapolation included, so the test takes them from the raw
  series at the same evaluation time);
- quantiles from the merged histograms in the bucket of the combined observations' quantile,
  where the traffic puts each instance's own p99 in another bucket than the fleet's.

The exact comparisons run once the agents have stopped, so no sample reaches the centre after
the evaluation it is compared at (Prometheus 2.42 rules have no query offset for late samples).
"""

from __future__ import annotations

import math
import re
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_dashboards import substitute
from tests.support.daemon import Daemon
from tests.support.fleet import ConfiguredPrometheus, agent, centre, hashmod
from tests.support.net import free_port
from tests.test_rules import RULE_FILES, dashboards, panels

SHARDS = 2
WAIT = 60.0  # seconds for any one condition; each is typically met in one or two seconds
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # families.LATENCY_BUCKETS
NOT_ERRORS = {"", "ok", "success", "hit"}  # rules/recording.yml, instance_operation:apm_operation_errors


@dataclass(frozen=True)
class Series:
    """`count` observations of `latency_ms` for one (operation, outcome) on one daemon."""
    operation: str
    outcome: str
    latency_ms: float
    count: int

    def line(self) -> str:
        return f"apm.operation:{self.latency_ms:g}|ms|#operation:{self.operation},outcome:{self.outcome}"


# checkout: daemon 0 is fast (its p99 in the 5 ms bucket), daemon 1 slow (its p99 in the 500 ms
# bucket); together the p99 falls in the 50 ms bucket, which neither instance's own p99 is in.
# Each quantile is at least a factor 2 in weight away from a bucket boundary, so the rates'
# per-series extrapolation (a few per cent) cannot move it.
# search runs on all three, login on two; each daemon has its own volumes and error outcomes.
TRAFFIC: list[list[Series]] = [
    [Series("checkout", "ok", 4, 995), Series("checkout", "error", 40, 5), Series("search", "ok", 2, 100)],
    [Series("checkout", "ok", 40, 120), Series("checkout", "error", 400, 4), Series("search", "ok", 8, 50),
     Series("login", "ok", 15, 30)],
    [Series("search", "ok", 8, 200), Series("search", "timeout", 8, 20), Series("login", "ok", 15, 60),
     Series("login", "denied", 15, 6)],
]


# --- what the traffic must give ------------------------------------------------------------------

def observations(series: list[Series], first_line: bool) -> list[float]:
    """Latencies in seconds; without the first line of each series (what rate() sees) or with."""
    return [s.latency_ms / 1000 for s in series for _ in range(s.count - (0 if first_line else 1))]


def bucket_of(value: float) -> tuple[float, float]:
    lower = 0.0
    for upper in BUCKETS:
        if value <= upper:
            return lower, upper
        lower = upper
    return lower, math.inf


def true_quantile(values: list[float], q: float) -> float:
    """The nearest-rank quantile of the observations themselves."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def test_traffic_puts_the_fleet_p99_in_a_bucket_no_instance_has() -> None:
    # The design the fleet test's quantile check relies on, from the traffic alone.
    checkout = [[s for s in daemon if s.operation == "checkout"] for daemon in TRAFFIC]
    fleet = bucket_of(true_quantile(observations(sum(checkout, []), False), 0.99))
    own = [bucket_of(true_quantile(observations(c, False), 0.99)) for c in checkout if c]
    assert fleet == (0.025, 0.05) and fleet not in own, (fleet, own)


# --- the fleet -----------------------------------------------------------------------------------

def send(port: int, lines: list[str]) -> None:
    """StatsD over UDP, several lines a datagram (as clients batch), each datagram under 1400 bytes."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        datagram: list[str] = []
        for line in [*lines, None]:
            if line is None or sum(len(x) + 1 for x in datagram) + len(line) > 1400:
                udp.sendto("\n".join(datagram).encode(), ("127.0.0.1", port))
                datagram = []
            if line is not None:
                datagram.append(line)


def wait_until(what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Poll until check() returns something truthy; fail with `what` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}; last: {value!r}")
        time.sleep(0.2)


def labelled(result: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float]:
    """An instant vector as {(label values...): value}."""
    return {tuple(s["metric"].get(k, "") for k in labels): float(s["value"][1]) for s in result}


@dataclass
class Fleet:
    daemons: list[Daemon]
    udp_ports: list[int]
    agents: list[ConfiguredPrometheus]
    centre: ConfiguredPrometheus

    @property
    def targets(self) -> list[str]:
        return [f"127.0.0.1:{d.port}" for d in self.daemons]

    def shard_of(self, target: str) -> int:
        return hashmod(target, SHARDS)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    started: list[Any] = []
    try:
        central = centre(tmp_path / "centre", [str(p) for p in RULE_FILES]).start()
        started.append(central)
        daemons: list[Daemon] = []
        ports: list[int] = []
        for i in range(len(TRAFFIC)):
            workdir = tmp_path / f"daemon{i}"
            workdir.mkdir()
            port = free_port(socket.SOCK_DGRAM)
            config = {"statsd": {"listeners": [f"udp://127.0.0.1:{port}"]}}
            daemon = Daemon(workdir, config)
            # Both shards must get a target (three random ports all hash alike one time in four).
            while i == len(TRAFFIC) - 1 and len({hashmod(f"127.0.0.1:{p}", SHARDS)
                                                   for p in [*(d.port for d in daemons), daemon.port]}) < SHARDS:
                daemon.port = free_port()
            daemons.append(daemon)
            ports.append(port)
        for daemon in daemons:
            started.append(daemon)
            daemon.start()
        targets = [f"127.0.0.1:{d.port}" for d in daemons]
        agents = [agent(tmp_path / f"agent{shard}", targets, shard, SHARDS, central) for shard in range(SHARDS)]
        for a in agents:
            started.append(a)
            a.start()
        yield Fleet(daemons, ports, agents, central)
    finally:
        for thing in reversed(started):
            thing.stop()


def active_targets(prom: ConfiguredPrometheus) -> set[str]:
    return {t["labels"]["instance"] for t in prom.api("targets", state="active")["activeTargets"]}


def lines_counted(daemon: Daemon, n: int) -> bool:
    return (daemon.value("apm_exporter_statsd_lines_total") or 0) >= n


def send_and_wait(fleet: Fleet, lines_for: Callable[[list[Series]], list[str]], sent: list[int]) -> None:
    """Send each daemon its lines, then wait until each has counted every line it was sent."""
    for i, series in enumerate(TRAFFIC):
        lines = lines_for(series)
        send(fleet.udp_ports[i], lines)
        sent[i] += len(lines)
    for i, daemon in enumerate(fleet.daemons):
        wait_until(f"daemon {i} to count {sent[i]} lines", partial(lines_counted, daemon, sent[i]))
        assert daemon.value("apm_exporter_statsd_lines_total") == sent[i], daemon.log()


def counts_at_centre(fleet: Fleet) -> dict[tuple[str, ...], float]:
    return labelled(fleet.centre.query("sum by (instance, operation, outcome) (apm_operation_duration_seconds_count)"),
                    "instance", "operation", "outcome")


def expected_counts(fleet: Fleet, first_only: bool) -> dict[tuple[str, ...], float]:
    return {(target, s.operation, s.outcome): float(1 if first_only else s.count)
            for target, series in zip(fleet.targets, TRAFFIC) for s in series}


# --- the test ----------------------------------------------------------------------------------

def test_fleet_sums_and_merged_quantiles_at_the_centre(fleet: Fleet) -> None:
    centre = fleet.centre
    # Sharding: every target in exactly one agent's shard, the one hashmod names, both shards used.
    shards = [wait_until(f"agent {n} to keep its targets", partial(active_targets, a))
              for n, a in enumerate(fleet.agents)]
    assert set().union(*shards) == set(fleet.targets) and not set.intersection(*shards), shards
    assert all(fleet.shard_of(t) == n for n, shard in enumerate(shards) for t in shard), shards

    sent = [0] * len(TRAFFIC)
    send_and_wait(fleet, lambda series: [s.line() for s in series], sent)
    wait_until("every series at the centre with its first sample",
               lambda: counts_at_centre(fleet) == expected_counts(fleet, first_only=True))
    send_and_wait(fleet, lambda series: [s.line() for s in series for _ in range(s.count - 1)], sent)
    final = expected_counts(fleet, first_only=False)
    wait_until("the centre to hold every sample sent", lambda: counts_at_centre(fleet) == final)

    # Every sample exactly once, merged across shards: counts, fleet sums, buckets, latency sums.
    fleet_counts: dict[str, float] = defaultdict(float)
    for (_, operation, _), n in final.items():
        fleet_counts[operation] += n
    assert labelled(centre.query("sum by (operation) (apm_operation_duration_seconds_count)"),
                    "operation") == {(op,): n for op, n in fleet_counts.items()}
    everything = [s for series in TRAFFIC for s in series]
    for operation in fleet_counts:
        values = observations([s for s in everything if s.operation == operation], True)
        selector = f'{{operation="{operation}"}}'
        buckets = labelled(centre.query(f"sum by (le) (apm_operation_duration_seconds_bucket{selector})"), "le")
        assert {float(le): n for (le,), n in buckets.items()} == \
            {b: float(sum(v <= b for v in values)) for b in (*BUCKETS, math.inf)}, operation
        total = labelled(centre.query(f"sum(apm_operation_duration_seconds_sum{selector})"))[()]
        assert math.isclose(total, sum(values), rel_tol=1e-9), operation
    assert labelled(centre.query('sum by (instance) (apm_exporter_statsd_lines_total{job="apm"})'), "instance") == \
        {(t,): float(n) for t, n in zip(fleet.targets, sent)}
    assert labelled(centre.query('count by (instance) (up{job="apm"} == 1)'), "instance") == \
        {(t,): 1.0 for t in fleet.targets}

    # From here on nothing more arrives: rules and queries are compared on a fixed data set.
    for a in fleet.agents:
        a.stop()
    stopped = time.time()
    stamp = wait_until("a rule evaluation after the agents stopped", lambda: _evaluated_after(centre, stopped))
    centre_now = Centre(centre, f"{stamp:.3f}", fleet.targets)
    centre_now.check_recording_rules()
    centre_now.check_overview_dashboard()

    # The centre evaluated every rule without error.
    rules = [r for g in centre.api("rules")["groups"] for r in g["rules"]]
    assert rules and all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules
                                                               if r["health"] != "ok"]


def _evaluated_after(centre: ConfiguredPrometheus, moment: float) -> float | None:
    """The operations group's newest evaluation time, once it is a second past `moment`."""
    stamps = {float(s["value"][1]) for s in centre.query("timestamp(job_operation:apm_operations:rate5m)")}
    newest = max(stamps, default=0.0)
    return newest if newest > moment + 1 and len(stamps) == 1 else None


class Centre:
    """The central server at one evaluation time, and what its rules and panels must show then.

    Every expected rate is a sum of per-instance rates of the raw series, evaluated by the centre
    at the same time over the same window: the rules and panels must merge the instances exactly.
    """

    def __init__(self, prom: ConfiguredPrometheus, at: str, targets: list[str]) -> None:
        self.prom, self.at, self.targets = prom, at, targets
        self.counts = self.by("rate(apm_operation_duration_seconds_count[5m])", "instance", "operation", "outcome")
        self.buckets = self.by("rate(apm_operation_duration_seconds_bucket[5m])", "instance", "operation", "le")
        self.counts_1m = self.by("rate(apm_operation_duration_seconds_count[1m])", "instance", "operation", "outcome")
        self.sums_1m = self.by("rate(apm_operation_duration_seconds_sum[1m])", "instance", "operation")
        assert {i for i, _, _ in self.counts} == set(targets), self.counts

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.prom.api("query", query=expr, time=self.at)["result"])

    def by(self, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
        return labelled(self.query(f"sum by ({', '.join(labels)}) ({expr})" if labels else expr), *labels)

    # --- sums of the raw per-instance rates ---

    def rates(self, *keep: str, errors: bool = False, window: str = "5m") -> dict[tuple[str, ...], float]:
        """Request (or error) rates summed by the labels kept, of instance, operation and outcome."""
        index = {"instance": 0, "operation": 1, "outcome": 2}
        out: dict[tuple[str, ...], float] = defaultdict(float)
        for k, v in (self.counts if window == "5m" else self.counts_1m).items():
            if not errors or k[2] not in NOT_ERRORS:
                out[tuple(k[index[label]] for label in keep)] += v
        return dict(out)

    def ratio(self, *keep: str) -> dict[tuple[str, ...], float]:
        errors = self.rates(*keep, errors=True)
        return {k: errors.get(k, 0.0) / v for k, v in self.rates(*keep).items()}

    def mean_latency(self) -> dict[tuple[str, ...], float]:
        counts = self.rates("operation", window="1m")
        sums: dict[tuple[str, ...], float] = defaultdict(float)
        for (_, operation), v in self.sums_1m.items():
            sums[operation,] += v
        return {k: sums[k] / v for k, v in counts.items()}

    def in_quantile_bucket(self, value: float, q: float, operation: str | None, instance: str | None,
                           what: str) -> None:
        """A histogram_quantile lies in the bucket of the observations' own quantile (of the
        slowest operation when `operation` is None, as for max() over operations)."""
        def truth(op: str) -> float:
            chosen = [s for t, daemon in zip(self.targets, TRAFFIC) for s in daemon
                      if s.operation == op and instance in (None, t)]
            return true_quantile(observations(chosen, False), q)
        operations = [operation] if operation else sorted({s.operation for d in TRAFFIC for s in d})
        lower, upper = bucket_of(max(truth(op) for op in operations))
        assert lower < value <= upper, (what, operation, instance, q, value, (lower, upper))

    def check_quantiles(self, result: list[dict[str, Any]], q: float, what: str) -> None:
        assert result, f"{what}: no quantile"
        for s in result:
            labels = s["metric"]
            self.in_quantile_bucket(float(s["value"][1]), float(labels.get("quantile", q)),
                                    labels.get("operation"), labels.get("instance"), what)

    # --- the checks ---

    def check_recording_rules(self) -> None:
        ops = self.rates("instance", "operation")
        close(self.by("instance_operation:apm_operations:rate5m", "instance", "operation"), ops, "instance rate")
        errors = self.rates("instance", "operation", errors=True)
        close(self.by("instance_operation:apm_operation_errors:rate5m", "instance", "operation"),
              {k: errors.get(k, 0.0) for k in ops}, "instance errors")
        close(self.by("instance_operation:apm_operation_error_ratio:rate5m", "instance", "operation"),
              self.ratio("instance", "operation"), "instance error ratio")
        close(self.by("instance_operation_le:apm_operation_duration_seconds_bucket:rate5m",
                      "instance", "operation", "le"), self.buckets, "instance buckets")
        close(self.by("job_operation:apm_operations:rate5m", "operation"), self.rates("operation"), "fleet rate")
        close(self.by("job_operation:apm_operation_error_ratio:rate5m", "operation"), self.ratio("operation"),
              "fleet error ratio")
        close(self.by("job_operation:apm_operation_latency_objective_seconds:p99", "operation"),
              {k: 0.5 for k in self.rates("operation")}, "latency objective")
        fleet_p99 = self.query("job_operation_quantile:apm_operation_duration_seconds:histogram_quantile5m")
        assert {s["metric"]["operation"] for s in fleet_p99} == {k for k, in self.rates("operation")}
        self.check_quantiles(fleet_p99, 0.99, "fleet p99 rule")
        own = self.query("instance_operation_quantile:apm_operation_duration_seconds:histogram_quantile5m")
        assert len(own) == 3 * len(ops)
        self.check_quantiles(own, 0.99, "instance quantile rules")

    def check_overview_dashboard(self) -> None:
        """Every query of the overview dashboard, with "All" selected for every variable."""
        health = self.by("instance:apm_health:score", "instance")
        assert set(health) == {(t,) for t in self.targets}, health
        expected: dict[str, tuple[tuple[str, ...], dict[tuple[str, ...], float]]] = {
            "Request rate": ((), {(): sum(self.rates("operation").values())}),
            "Error ratio": ((), self.ratio()),
            "Host health (worst instance)": ((), {(): min(health.values())}),
            "Request rate by operation": (("operation",), self.rates("operation")),
            "Error ratio by operation": (("operation",), self.ratio("operation")),
            "Outcomes": (("operation", "outcome"), self.rates("operation", "outcome", window="1m")),
            "Slowest operations B": (("operation",), self.rates("operation")),
            "Slowest operations C": (("operation",), self.ratio("operation")),
            "Slowest operations D": (("operation",), {k: 0.5 for k in self.rates("operation")}),
            "Mean latency by operation": (("operation",), self.mean_latency()),
            "Error ratio by instance": (("instance", "operation"), self.ratio("instance", "operation")),
            "Host health by instance": (("instance",), health),
        }
        checked = set()
        dashboard = dashboards()["overview.json"]
        for panel in panels(dashboard):
            for target in panel["targets"]:
                expr = substitute(target["expr"])
                name = panel["title"] if len(panel["targets"]) == 1 else f"{panel['title']} {target['refId']}"
                quantile = re.match(r"^(?:max|topk\(\d+,)?\(?\s*histogram_quantile\((0\.\d+)", expr)
                if quantile:
                    self.check_quantiles(self.query(expr), float(quantile.group(1)), name)
                elif name.startswith("p99 by instance"):
                    self.check_quantiles(self.query(expr), 0.99, name)
                else:
                    assert name in expected, f"{name}: a new overview query needs its expected value here"
                    labels, want = expected[name]
                    close(labelled(self.query(expr), *labels), want, name)
                checked.add(name)
        assert set(expected) <= checked, set(expected) - checked
        for variable, names in (("job", {"apm"}), ("instance", set(self.targets)),
                                ("operation", {k for k, in self.rates("operation")})):
            definition = next(v["definition"] for v in dashboard["templating"]["list"] if v["name"] == variable)
            parsed = re.fullmatch(r"label_values\(([\w:]+)(?:\{(.*)\})?, *\w+\)", definition)
            assert parsed, definition
            metric, matchers = parsed.groups()
            values = {s["metric"][variable] for s in self.query(substitute(f"{metric}{{{matchers or ''}}}"))}
            assert values == names, (variable, values)


def close(got: dict[Any, float], want: dict[Any, float], what: str) -> None:
    assert got.keys() == want.keys(), (what, got, want)
    for k in want:
        assert math.isclose(got[k], want[k], rel_tol=1e-9, abs_tol=1e-12), (what, k, got[k], want[k])
