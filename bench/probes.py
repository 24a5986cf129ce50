"""Each probe side by side with the Debian peer exporter against the same server, in one run.

    python bench/probes.py [--scrapes 200] [--write-docs]

Starts Redis, PostgreSQL, PgBouncer and an HTTP(S) site once (the test suite's server
classes and a stdlib http.server in its own process, on free loopback ports), then for
each: our daemon with only that probe configured, and the peer
(prometheus-redis-exporter, prometheus-postgres-exporter, prometheus-pgbouncer-exporter,
prometheus-blackbox-exporter's http module, Debian's packages) with its default
configuration; the SQL probe beside postgres_exporter running the same user queries
(--extend.query-path, its default collectors off).
Scrapes alternate between the two so the machine's noise falls on both alike. Reports
the scrape latency median and p99, CPU seconds per scrape (/proc/<pid>/stat), resident
memory and series count; for the HTTP rows, each prober's own time by phase (ours
apm_http_probe_phase_seconds, blackbox's probe_http_duration_seconds: the same phase names),
which says where a gap between the two is; and the coverage table: for each signal of the peer's default
output that an SRE alerts on, the name we export it under, checked against both
scrapes (a row whose families are missing on either side fails the run).
`--write-docs` puts the tables into docs/probes.md between its bench markers.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.servers import (  # noqa: E402
    PgBouncerServer,
    PostgresServer,
    RedisServer,
    wait_for_port,
    workdir,
)
from tests.support.tls import make_pki  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from scrape import cpu_seconds, free_port, rss_mib  # noqa: E402  (the sibling benchmark's helpers)

DOCS = ROOT / "docs" / "probes.md"
BEGIN, END = "<!-- bench/probes.py: begin -->", "<!-- bench/probes.py: end -->"

# What an SRE alerts on in each peer's default output, and the name we export it under.
# (peer family, our family or None where we export nothing for it, what it is); both must be
# present in the run's scrapes.
COVERAGE: dict[str, list[tuple[str, str | None, str]]] = {
    "redis": [
        ("redis_up", "apm_up", "target answers"),
        ("redis_uptime_in_seconds", "apm_redis_uptime_seconds", "restarts"),
        ("redis_connected_clients", "apm_cache_clients", "clients"),
        ("redis_blocked_clients", "apm_redis_blocked_clients", "blocked clients"),
        ("redis_rejected_connections_total", "apm_redis_rejected_connections_total", "refused at maxclients"),
        ("redis_config_maxclients", "apm_redis_max_clients", "client limit"),
        ("redis_memory_used_bytes", "apm_cache_memory_bytes", "memory used"),
        ("redis_memory_max_bytes", "apm_cache_memory_limit_bytes", "maxmemory"),
        ("redis_mem_fragmentation_ratio", "apm_redis_memory_fragmentation_ratio", "fragmentation"),
        ("redis_memory_used_rss_bytes", "apm_redis_memory_rss_bytes", "resident memory"),
        ("redis_evicted_keys_total", "apm_cache_evictions_total", "evictions"),
        ("redis_expired_keys_total", "apm_cache_expirations_total", "expirations"),
        ("redis_keyspace_hits_total", "apm_cache_requests_total", "hits (and misses)"),
        ("redis_db_keys", "apm_redis_db_keys", "keys per database"),
        ("redis_db_keys_expiring", "apm_redis_db_expiring_keys", "expiring keys per database"),
        ("redis_commands_total", "apm_redis_command_duration_seconds_count", "calls per command"),
        ("redis_commands_duration_seconds_total", "apm_redis_command_duration_seconds_sum", "time per command"),
        ("redis_commands_failed_calls_total", "apm_redis_command_errors_total", "failed/rejected calls"),
        ("redis_latency_percentiles_usec", "apm_redis_command_duration_seconds", "latency percentiles"),
        ("redis_connected_slaves", "apm_redis_connected_replicas", "replicas"),
        ("redis_master_repl_offset", "apm_redis_replication_offset_bytes", "replication offset"),
        ("redis_instance_info", "apm_redis_info", "version, role"),
        ("redis_rdb_last_save_timestamp_seconds", "apm_redis_rdb_last_save_timestamp_seconds", "last save"),
        ("redis_rdb_changes_since_last_save", "apm_redis_rdb_changes_since_last_save", "unsaved writes"),
        ("redis_rdb_last_bgsave_status", "apm_redis_rdb_last_bgsave_ok", "last save failed"),
        ("redis_aof_enabled", "apm_redis_aof_enabled", "AOF on"),
        ("redis_aof_last_write_status", "apm_redis_aof_last_write_ok", "AOF write failed"),
        ("redis_net_input_bytes_total", "apm_redis_net_input_bytes_total", "network in"),
        ("redis_net_output_bytes_total", "apm_redis_net_output_bytes_total", "network out"),
    ],
    "postgres": [
        ("pg_up", "apm_up", "target answers"),
        ("pg_stat_database_xact_commit", "apm_postgres_transactions_total", "commits (and rollbacks)"),
        ("pg_stat_database_blks_hit", "apm_cache_requests_total", "buffer hits (and reads)"),
        ("pg_stat_database_deadlocks", "apm_postgres_deadlocks_total", "deadlocks"),
        ("pg_stat_database_temp_bytes", "apm_postgres_temp_bytes_total", "temp bytes"),
        ("pg_stat_database_conflicts", "apm_postgres_conflicts_total", "recovery conflicts"),
        ("pg_stat_database_numbackends", "apm_pool_connections", "sessions per database"),
        ("pg_settings_max_connections", "apm_pool_max_connections", "max_connections"),
        ("pg_stat_activity_count", "apm_pool_connections", "sessions by state"),
        ("pg_stat_activity_max_tx_duration", "apm_postgres_oldest_transaction_age_seconds", "oldest transaction"),
        ("pg_locks_count", "apm_postgres_locks", "locks by mode"),
        ("pg_database_size_bytes", "apm_postgres_database_size_bytes", "database size"),
        ("pg_stat_bgwriter_checkpoints_timed_total", "apm_postgres_checkpoints_total", "checkpoints"),
        ("pg_stat_bgwriter_buffers_checkpoint_total", "apm_postgres_buffers_written_total", "buffers written"),
        ("pg_stat_bgwriter_checkpoint_write_time_total", "apm_postgres_checkpoint_seconds_total", "checkpoint time"),
        ("pg_stat_bgwriter_buffers_alloc_total", "apm_postgres_buffers_allocated_total", "buffers allocated"),
        ("pg_stat_bgwriter_maxwritten_clean_total", "apm_postgres_bgwriter_maxwritten_clean_total",
         "bgwriter stops"),
        # pg_replication_lag (the peer's default, on replicas only) is apm_postgres_replay_lag_seconds;
        # both are absent on the primary measured here (tests/collectors/test_postgres.py has the replica).
    ],
    # postgres_exporter as a query exporter (SQL_QUERIES through --extend.query-path, its default
    # collectors off) against our SQL probe with the same queries.
    "sql": [
        ("items_n", "shop_items", "a user query's column (rows per kind)"),
        ("items_total", "shop_items_value", "a numeric column"),
        ("sessions_n", "shop_sessions", "a second query (sessions by state)"),
    ],
    # Debian's prometheus-pgbouncer-exporter 1.7, run through PGBOUNCER_SHIM (see there).
    "pgbouncer": [
        ("pgbouncer_active_clients", "apm_pool_clients", "clients active (and waiting)"),
        ("pgbouncer_waiting_clients", "apm_pool_pending_requests", "clients waiting"),
        ("pgbouncer_pool_size", "apm_pool_max_connections", "pool size"),
        ("pgbouncer_reserve_pool", None, "reserve pool size"),
        ("pgbouncer_requests_total", "apm_pool_queries_total", "queries"),
        ("pgbouncer_query_microseconds_total", "apm_pool_query_seconds_total", "query time"),
        ("pgbouncer_received_bytes_total", None, "bytes from clients"),
        ("pgbouncer_sent_bytes_total", None, "bytes to clients"),
        ("pgbouncer_used_clients", "apm_pgbouncer_list_items", "SHOW LISTS items (every list)"),
        ("pgbouncer_used_servers", "apm_pgbouncer_list_items", "SHOW LISTS items"),
    ],
    # blackbox_exporter 0.23's http module (module http_2xx) against the HTTPS site.
    "https": [
        ("probe_success", "apm_http_probe_success", "endpoint answers as expected"),
        ("probe_http_status_code", "apm_http_probe_status_code", "status code"),
        ("probe_duration_seconds", "apm_operation_duration_seconds", "probe duration"),
        ("probe_ssl_earliest_cert_expiry", "apm_http_probe_tls_cert_expiry_timestamp_seconds",
         "certificate expiry (earliest of the served chain)"),
        ("probe_http_duration_seconds", "apm_http_probe_phase_seconds", "time by phase"),
        ("probe_dns_lookup_time_seconds", "apm_http_probe_phase_seconds", "DNS time (phase resolve)"),
        ("probe_http_redirects", "apm_http_probe_redirects", "redirects followed"),
        ("probe_failed_due_to_regex", "apm_http_probe_failed", "body check failed (and which)"),
        ("probe_tls_version_info", "apm_http_probe_info", "TLS version (label tls_version)"),
        ("probe_http_ssl", "apm_http_probe_info", "TLS used (tls_version not empty)"),
        ("probe_http_version", "apm_http_probe_info", "HTTP version (label http_version)"),
        ("probe_ip_protocol", "apm_http_probe_ip_protocol", "IPv4 or IPv6"),
        ("probe_http_uncompressed_body_length", "apm_http_probe_body_bytes", "body size"),
        ("probe_http_content_length", "apm_http_probe_body_bytes", "body size (as sent)"),
        ("probe_ip_addr_hash", None, "address changed"),
    ],
}
# Debian's prometheus-pgbouncer-exporter 1.7 fails to start against Debian's PgBouncer 1.18
# whatever its flags or config file: registering its SHOW STATS collector reads the column
# total_requests, which 1.18's SHOW STATS does not have (it has total_query_count), and
# raises KeyError. No option selects the columns, so the bench runs the peer's own entry
# point with that one column renamed in its table; the family it exports
# (pgbouncer_requests_total) and everything else are the peer's code as shipped.
PGBOUNCER_SHIM = ("import sys; from prometheus_pgbouncer_exporter import cli, collectors as c; "
                  "m = c.StatsCollector.metrics; m['total_query_count'] = m.pop('total_requests'); "
                  "sys.argv[0] = 'prometheus-pgbouncer-exporter'; cli.main()")

# The HTTP(S) site both HTTP probers read: a 2 KB page from the stdlib's threading server in a
# process of its own (so it competes with neither exporter's interpreter).
SITE = """
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<html>" + b"ok " * 680 + b"</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
if len(sys.argv) > 2:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""

# The SQL row's user queries: a table's rows by a label with a count and a numeric sum, and a view's.
SQL_QUERIES = {
    "items": ("SELECT kind, count(*) AS n, sum(price) AS total FROM bench_items GROUP BY kind",
              ["kind"], {"n": "shop_items", "total": "shop_items_value"}),
    "sessions": ("SELECT COALESCE(state, 'none') AS state, count(*) AS n FROM pg_stat_activity GROUP BY 1",
                 ["state"], {"n": "shop_sessions"}),
}


def sql_probe(dsn: str) -> dict[str, Any]:
    """Our SQL probe's target with SQL_QUERIES."""
    return {"name": "bench", "dsn": dsn, "queries": [
        {"name": name, "sql": sql, "metrics": [{"name": ours, "value": column, "labels": labels}
                                               for column, ours in values.items()]}
        for name, (sql, labels, values) in SQL_QUERIES.items()]}


def peer_queries(path: Path) -> Path:
    """SQL_QUERIES in postgres_exporter's --extend.query-path format (<query>_<column> families)."""
    path.write_text(yaml.safe_dump({name: {"query": sql, "metrics": [
        *({label: {"usage": "LABEL", "description": label}} for label in labels),
        *({column: {"usage": "GAUGE", "description": column}} for column in values)]}
        for name, (sql, labels, values) in SQL_QUERIES.items()}))
    return path


# Peers' family names differ between versions; alternatives to accept for a row.
ALIASES: dict[str, tuple[str, ...]] = {}


def scrape(url: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as r:
        body = r.read()
    return time.perf_counter() - start, body


def family_names(body: bytes) -> set[str]:
    names = set()
    for line in body.decode(errors="replace").splitlines():
        if line and not line.startswith("#"):
            name = re.split(r"[{ ]", line, 1)[0]
            names.add(name)
            for suffix in ("_bucket", "_count", "_sum"):
                if name.endswith(suffix):
                    names.add(name[: -len(suffix)])
    return names


@dataclass
class Exporter:
    name: str
    cmd: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    body: bytes = b""
    cpu_per_scrape: float = 0.0
    rss: float = 0.0
    failed: str = ""
    path: str = "/metrics"
    rounds: list[tuple[float, float]] = field(default_factory=list)  # (median s, CPU s/scrape) per round
    phase_family: str = ""  # an HTTP prober's time-by-phase gauge, read from every scrape
    phases: dict[str, list[float]] = field(default_factory=dict)  # seconds by phase, one per scrape

    def median(self) -> float:
        """The median of the rounds' medians."""
        return statistics.median(m for m, _ in self.rounds)

    def cpu(self) -> float:
        return statistics.median(c for _, c in self.rounds)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self) -> None:
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **self.env})
        deadline = time.monotonic() + 60
        while True:
            try:
                scrape(self.url)
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.log.seek(0)
                    tail = self.log.read()[-1500:].decode(errors="replace")
                    raise SystemExit(f"{self.name} did not start: {' '.join(self.cmd)}\n{tail}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)

    def note_phases(self) -> None:
        """The last scrape's time by phase as the prober measured it (both name the phases alike)."""
        for line in self.body.decode(errors="replace").splitlines():
            if line.startswith(self.phase_family + "{"):
                phase = re.search(r'phase="([a-z]+)"', line)
                if phase:
                    self.phases.setdefault(phase.group(1), []).append(float(line.rsplit(" ", 1)[1]))

    def series(self) -> int:
        return sum(1 for line in self.body.splitlines() if line and not line.startswith(b"#"))


def ours(name: str, probe: dict[str, Any] | None, tmp: Path, row: str = "") -> Exporter:
    """Our daemon with one target of probe kind `name` (none with probe=None: the daemon's fixed cost);
    `row` names its config file (default: the kind)."""
    port = free_port()
    config = {"statsd": {"listeners": []},
              "collectors": {"host": {"enabled": False}, "process": {"enabled": False},
                             "container": {"enabled": False}},
              "probes": {name: [probe]} if probe else {}}
    path = tmp / f"{row or name}.yaml"
    path.write_text(yaml.safe_dump(config))
    binary = shutil.which("apm-exporter") or str(Path(sys.executable).parent / "apm-exporter")
    return Exporter(f"apm-exporter ({name if probe else 'no probe'})", [binary, "--config.file", str(path),
                                               "--web.listen-address", f"127.0.0.1:{port}"], port)


def peer(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise SystemExit(f"install the peer: apt-get install {binary}")
    return path


def run_pair(pair: tuple[Exporter, ...], scrapes: int) -> tuple[Exporter, ...]:
    """All side by side (ours, the peer, our daemon with no probe); one that cannot start is
    reported and the others run without it."""
    running: list[Exporter] = []
    for e in pair:
        try:
            e.start()
            running.append(e)
        except SystemExit as err:
            e.failed = str(err).splitlines()[-1]
            print(f"{e.name}: {e.failed}", file=sys.stderr)
    pair = tuple(running)
    try:
        for e in pair:  # warm-up: connections opened, drivers imported
            for _ in range(5):
                scrape(e.url)
        before = {e.name: cpu_seconds(e.proc.pid) for e in pair if e.proc}
        this_round: dict[str, list[float]] = {e.name: [] for e in pair}
        for _ in range(scrapes):
            for e in pair:
                took, e.body = scrape(e.url)
                if e.phase_family:
                    e.note_phases()
                e.latencies.append(took)
                this_round[e.name].append(took)
        for e in pair:
            assert e.proc is not None
            e.cpu_per_scrape = (cpu_seconds(e.proc.pid) - before[e.name]) / scrapes
            e.rounds.append((statistics.median(this_round[e.name]), e.cpu_per_scrape))
            e.rss = rss_mib(e.proc.pid)
    finally:
        for e in pair:
            e.stop()
    return pair


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1, help="run every row this many times (each exporter "
                        "restarted); the tables give the median of the rounds' medians and CPU, and of their ratios")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated rows to measure (e.g. http,https); "
                        "the others are left out of the tables (and --write-docs refuses)")
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))

    redis = RedisServer(workdir("bench-redis"))
    postgres = PostgresServer(workdir("bench-postgres"))
    servers: list[Any] = [redis, postgres]
    sites: list[subprocess.Popen[bytes]] = []
    pairs: dict[str, tuple[Exporter, Exporter]] = {}
    baselines: dict[str, Exporter] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        try:
            redis.start()
            postgres.start()
            pgbouncer = PgBouncerServer(workdir("bench-pgbouncer"), postgres)
            servers.append(pgbouncer)
            pgbouncer.start()
            client = redis.client()
            for i in range(1000):
                client.set(f"session:{i}", "x" * 100, ex=3600 if i % 2 else None)
            for i in range(200):
                client.get(f"session:{i}")
            with pgbouncer.connect() as conn:
                conn.execute("SELECT 1")
            # A session that holds a lock in an open transaction for the whole run, as a busy
            # server always has: the lock and transaction-age families then have something to count.
            with postgres.connect() as conn:
                conn.execute("DROP TABLE IF EXISTS bench_items")
                conn.execute("CREATE TABLE bench_items (id int PRIMARY KEY, kind text, price numeric)")
                conn.execute("INSERT INTO bench_items SELECT i, (ARRAY['a','b','c','d'])[i % 4 + 1], i / 100.0 "
                             "FROM generate_series(1, 2000) i")
            holder = postgres.connect()
            holder.execute("BEGIN")
            holder.execute("SELECT count(*) FROM pg_class")
            pg_dsn = postgres.dsn()
            pairs["redis"] = (
                ours("redis", {"name": "bench", "url": redis.url}, tmp),
                Exporter("redis_exporter", [peer("prometheus-redis-exporter"), "-redis.addr", redis.url,
                                            "-web.listen-address", f"127.0.0.1:{(p := free_port())}"], p))
            pairs["postgres"] = (
                ours("postgres", {"name": "bench", "dsn": pg_dsn}, tmp),
                Exporter("postgres_exporter", [peer("prometheus-postgres-exporter"),
                                               f"--web.listen-address=127.0.0.1:{(p := free_port())}"], p,
                         env={"DATA_SOURCE_NAME": f"{pg_dsn}?sslmode=disable"}))
            pairs["sql"] = (
                ours("sql", sql_probe(pg_dsn), tmp),
                Exporter("postgres_exporter (queries)", [
                    peer("prometheus-postgres-exporter"), f"--web.listen-address=127.0.0.1:{(p := free_port())}",
                    "--disable-default-metrics", "--disable-settings-metrics", "--no-collector.database",
                    "--no-collector.bgwriter", f"--extend.query-path={peer_queries(tmp / 'queries.yaml')}"], p,
                    env={"DATA_SOURCE_NAME": f"{pg_dsn}?sslmode=disable"}))
            peer("prometheus-pgbouncer-exporter")
            pairs["pgbouncer"] = (
                ours("pgbouncer", {"name": "bench", "dsn": pgbouncer.dsn("pgbouncer")}, tmp),
                # Debian's python3, where the peer's package and its dependencies live.
                Exporter("pgbouncer_exporter", ["/usr/bin/python3", "-c", PGBOUNCER_SHIM, "--host", "127.0.0.1",
                                                "--port", str(p := free_port()), "--pgbouncer-host", "127.0.0.1",
                                                "--pgbouncer-port", str(pgbouncer.port),
                                                "--pgbouncer-user", "postgres"], p))
            pki = make_pki(tmp / "pki")
            blackbox = tmp / "blackbox.yml"
            blackbox.write_text(yaml.safe_dump({"modules": {"http_2xx": {
                "prober": "http", "http": {"tls_config": {"ca_file": str(pki.ca.cert)}}}}}))
            for kind, tls in (("http", []), ("https", [str(pki.server.cert), str(pki.server.key)])):
                site_port = free_port()
                sites.append(subprocess.Popen([sys.executable, "-c", SITE, str(site_port), *tls]))
                url = f"{kind}://127.0.0.1:{site_port}/"
                wait_for_port(site_port, sites[-1])
                pairs[kind] = (
                    ours("http", {"name": "bench", "url": url, "ca_file": str(pki.ca.cert)}, tmp, kind),
                    Exporter("blackbox_exporter", [peer("prometheus-blackbox-exporter"),
                                                   f"--config.file={blackbox}",
                                                   f"--web.listen-address=127.0.0.1:{(p := free_port())}"], p,
                             path=f"/probe?module=http_2xx&target={url}",
                             phase_family="probe_http_duration_seconds"))
                pairs[kind][0].phase_family = "apm_http_probe_phase_seconds"
            if only:
                pairs = {kind: pair for kind, pair in pairs.items() if kind in only}
            for kind in pairs:
                # Our daemon with no probe in the same alternation: what a scrape of ours costs before
                # any probe runs (HTTP serving, the self and StatsD families, rendering them).
                baselines[kind] = ours(kind, None, tmp, f"{kind}-none")
            for _ in range(args.rounds):
                for kind, pair in pairs.items():
                    run_pair((*pair, baselines[kind]), args.scrapes)
            holder.close()
        finally:
            for site in sites:
                site.terminate()
                site.wait(10)
            for server in reversed(servers):
                server.stop()
                shutil.rmtree(server.workdir, ignore_errors=True)

    command = f"python bench/probes.py --scrapes {args.scrapes}" + (f" --rounds {args.rounds}" if args.rounds > 1 else "")
    lines = [f"Measured with `{command}` (the exporters of a row against the same server, scrapes alternating"
             + (f"; medians of {args.rounds} rounds" if args.rounds > 1 else "") + "; `no probe` is our daemon "
             "with no probe configured, in the same alternation: the cost of a scrape of ours before any probe):", "",
             "| probe | exporter | series | median ms | p99 ms | CPU ms/scrape | RSS MiB | ours / peer (median, CPU) |",
             "|---|---|---|---|---|---|---|---|"]
    for kind, pair in pairs.items():
        for e in (*pair, baselines[kind]):
            if e.failed or not e.rounds:
                lines.append(f"| {kind} | {e.name} | did not start: `{e.failed[:100]}` | | | | | |")
                continue
            ratio = ""
            them = pair[1]
            if e is pair[0] and len(them.rounds) == len(e.rounds) and them.cpu():
                ratio = (f"{statistics.median(a[0] / b[0] for a, b in zip(e.rounds, them.rounds)):.2f}x, "
                         f"{statistics.median(a[1] / b[1] for a, b in zip(e.rounds, them.rounds)):.2f}x")
            lines.append(f"| {kind} | {e.name} | {e.series()} | {1000 * e.median():.2f} | "
                         f"{1000 * p99(e.latencies):.2f} | {1000 * e.cpu():.2f} | {e.rss:.1f} | {ratio} |")
    phased = {kind: pair for kind, pair in pairs.items() if pair[0].phases and pair[1].phases}
    if phased:
        # Where an HTTP row's time goes, as each prober times its own request: a gap in one phase
        # (the TLS handshake's, say) is that phase's code, not the scrape around it.
        lines += ["", "Time by phase, as each prober reports it (median over every scrape of the run, ms):", "",
                  "| probe | phase | ours | peer | ours - peer |", "|---|---|---:|---:|---:|"]
        for kind, (us, them) in phased.items():
            for phase in us.phases:
                if phase in them.phases:
                    a, b = (1000 * statistics.median(e.phases[phase]) for e in (us, them))
                    lines.append(f"| {kind} | {phase} | {a:.3f} | {b:.3f} | {a - b:+.3f} |")
    lines += ["", "Coverage: each signal of the peer's default output an SRE alerts on, and our name for it "
              "(both checked present in this run's scrapes):", "",
              "| probe | peer family | ours | signal |", "|---|---|---|---|"]
    missing = []
    for kind, rows in COVERAGE.items():
        if kind not in pairs:
            continue
        us, them = pairs[kind]
        theirs, mine = family_names(them.body), family_names(us.body)
        for peer_name, our_name, what in rows:
            found_peer = them.failed != "" or any(a in theirs for a in ALIASES.get(peer_name, (peer_name,)))
            found_ours = our_name is None or our_name in mine
            if not (found_peer and found_ours):
                missing.append(f"{kind}: {peer_name} ({'ok' if found_peer else 'absent'}) / "
                               f"{our_name} ({'ok' if found_ours else 'absent'})")
            lines.append(f"| {kind} | `{peer_name}` | {f'`{our_name}`' if our_name else '— (not exported)'} | {what} |")
    if os.environ.get("BENCH_DUMP"):
        for kind, pair in pairs.items():
            for e in pair:
                Path(os.environ["BENCH_DUMP"], f"{kind}-{e.name.split()[0]}.txt").write_bytes(e.body)
    table = "\n".join(lines)
    print(table)
    if missing:
        print("\nnot found in this run's scrapes:\n  " + "\n  ".join(missing))
    if args.write_docs and not missing and not only:
        text = DOCS.read_text()
        start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
        DOCS.write_text(text[:start] + "\n" + table + "\n" + text[end:])
    if missing:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
