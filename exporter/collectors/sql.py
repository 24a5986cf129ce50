"""SQL query probes for SQLite and PostgreSQL, query-exporter style.

Each target is one database (`dsn`) with named queries. Every run of a query
records its latency in apm_operation_duration_seconds{operation=<query name>,
outcome=ok|error}, the rows it returned, errors and runs slower than
`slow_threshold`; columns map to gauges (or counters) named by the user, with
other columns as labels. With `explain: true` the probe also asks the planner
how it would run the query and exports, per table, whether the plan reads the
whole table (SQLite `SCAN t` without an index, PostgreSQL `Seq Scan`): the
first thing to look at when a query gets slow.

A failing query is that query's problem (counted, logged once, its gauges
withdrawn until it succeeds again); only a database that cannot be reached
fails the collect (up 0, backoff).

SQLite databases are opened read-only; queries run in a worker thread with a
progress handler that aborts them at their deadline, and a cancelled collect
interrupts its query, so no thread outlives its timeout. PostgreSQL runs on one
kept connection of our own wire-protocol client (pgwire.py, no psycopg), each
query a prepared statement of the session in its own implicit transaction, its
values decoded into the types psycopg would give (pgtypes.py); a query past its
timeout is cancelled on the server and the connection stays. Queries take no
parameters (the configuration has no place for them): nothing is bound.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: the daemon loads it only when a SQLite probe runs
    import sqlite3

from exporter import families
from exporter.collectors import BaseProbe, ProbeError
from exporter.collectors.configs.sql import Config, Query, sqlite_path
from exporter.collectors.pgsession import PgSession, StatementTimeout
from exporter.collectors.pgwire import PgError
from exporter.cumulative import Counters, Operations
from exporter.model import Family, FamilySpec, MetricType
from exporter.statelog import StateLog

log = logging.getLogger(__name__)

class QueryError(Exception):
    """The query failed but the database is fine: counted, not a failed collect."""

    @classmethod
    def of(cls, err: Exception) -> QueryError:
        # Unmasked: the probe's query log and the job mask its secrets where it is shown.
        return cls(f"{type(err).__name__}: {err}")


# --- drivers --------------------------------------------------------------------------

Rows = list[dict[str, Any]]


class _SQLite:
    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._conn: sqlite3.Connection | None = None
        # The connection is used from worker threads; a query abandoned by a cancelled
        # collect may still be unwinding when the next one starts.
        self._lock = threading.Lock()

    async def connect(self) -> None:
        if self._conn is None:
            self._conn = await asyncio.to_thread(self._open)

    def _open(self) -> sqlite3.Connection:
        import sqlite3

        uri = f"file:{self.path}?mode=ro"
        # No statement cache: a cached EXPLAIN QUERY PLAN keeps the plan it was prepared with,
        # so an index added later would never show (the full-scan gauge would stay at 1).
        conn = sqlite3.connect(uri, uri=True, timeout=self.timeout, check_same_thread=False,
                               cached_statements=0)
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")  # fails now if it is not a database
        return conn

    def alive(self) -> bool:
        return self._conn is not None

    async def run(self, sql: str, timeout: float) -> Rows:
        return await self._in_thread(sql, timeout)

    async def full_scans(self, sql: str, timeout: float) -> dict[str, bool]:
        return sqlite_full_scans(str(row["detail"]) for row in await self._in_thread(
            f"EXPLAIN QUERY PLAN {sql}", timeout))

    async def _in_thread(self, sql: str, timeout: float) -> Rows:
        conn = self._conn
        assert conn is not None
        deadline = time.monotonic() + timeout
        try:
            return await asyncio.to_thread(self._execute, conn, sql, deadline)
        except asyncio.CancelledError:
            conn.interrupt()  # the worker thread stops at SQLite's next VM step
            raise

    def _execute(self, conn: sqlite3.Connection, sql: str, deadline: float) -> Rows:
        import sqlite3

        with self._lock:
            conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 1000)
            try:
                cursor = conn.execute(sql)
                columns = [d[0] for d in cursor.description or ()]
                return [dict(zip(columns, row)) for row in cursor.fetchall()]
            except sqlite3.OperationalError as err:
                if str(err) == "interrupted" and time.monotonic() > deadline:
                    raise QueryError(f"timed out after {self.timeout:g}s") from None
                raise QueryError.of(err) from None
            except sqlite3.Error as err:
                raise QueryError.of(err) from None
            finally:
                conn.set_progress_handler(None, 0)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.interrupt()
            await asyncio.to_thread(self._close, conn)

    def _close(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            conn.close()


class _Postgres:
    def __init__(self, dsn: str, timeout: float) -> None:
        self.session = PgSession(dsn, timeout)

    async def connect(self) -> None:
        await self.session.connection()

    def alive(self) -> bool:
        return self.session.alive

    async def run(self, sql: str, timeout: float) -> Rows:
        try:
            return await self.session.bounded(sql, timeout)
        except StatementTimeout as err:
            raise QueryError(str(err)) from None
        except (PgError, ConnectionError, OSError) as err:
            # A lost server fails the query too (as it did with psycopg); the collect then sees
            # the connection is not alive and fails as a whole.
            raise QueryError.of(err) from None

    async def full_scans(self, sql: str, timeout: float) -> dict[str, bool]:
        rows = await self.run(f"EXPLAIN (FORMAT JSON) {sql}", timeout)
        plan = rows[0]["QUERY PLAN"]
        if isinstance(plan, str):
            plan = json.loads(plan)
        return postgres_full_scans(plan[0]["Plan"])

    async def close(self) -> None:
        await self.session.drop()


# --- plans -------------------------------------------------------------------------------

# SQLite ≥ 3.36 says "SCAN t", older ones "SCAN TABLE t"; either may add "AS alias" and "USING … INDEX".
_SQLITE_STEP = re.compile(r"^(SCAN|SEARCH)\s+(?:TABLE\s+)?(\S+)(?:\s+AS\s+\S+)?(.*)$")
_NOT_TABLES = ("CONSTANT", "SUBQUERY")


def sqlite_full_scans(details: Iterator[str] | list[str]) -> dict[str, bool]:
    """Table → True when some step of the plan scans the table itself without an index."""
    out: dict[str, bool] = {}
    for detail in details:
        match = _SQLITE_STEP.match(detail.strip())
        if not match or match.group(2).upper() in _NOT_TABLES or match.group(2).startswith("("):
            continue
        kind, table, rest = match.groups()
        full = kind == "SCAN" and "USING" not in rest
        out[table] = out.get(table, False) or full
    return out


def postgres_full_scans(plan: dict[str, Any]) -> dict[str, bool]:
    """Table → True when the plan has a Seq Scan on it (EXPLAIN (FORMAT JSON) plan tree)."""
    out: dict[str, bool] = {}
    stack = [plan]
    while stack:
        node = stack.pop()
        table = node.get("Relation Name")
        if table:
            out[table] = out.get(table, False) or node.get("Node Type") == "Seq Scan"
        stack.extend(node.get("Plans", ()))
    return out


# --- the collector --------------------------------------------------------------------------

class _QueryState:
    def __init__(self, query: Query) -> None:
        self.query = query
        self.last_run = -1e18
        self.gauges: list[Family] = []
        self.specs = [FamilySpec(m.name, MetricType.GAUGE if m.type == "gauge" else MetricType.COUNTER,
                                 m.help or f"Column {m.value!r} of SQL probe query {query.name!r}.",
                                 tuple(m.labels), namespaced=False) for m in query.metrics]


class SQLCollector(BaseProbe):
    def __init__(self, config: Config) -> None:
        self.config = config
        self._driver: _SQLite | _Postgres = (
            _SQLite(sqlite_path(config.dsn), config.timeout) if config.dsn.startswith("sqlite://")
            else _Postgres(config.dsn, config.timeout))
        self.secrets = self._driver.session.secrets if isinstance(self._driver, _Postgres) else []
        self._queries = [_QueryState(q) for q in config.queries]
        self._queries_log = StateLog(log, "sql probe query failed", "sql probe query recovered", self.secrets)
        self._explain_log = StateLog(log, "sql probe EXPLAIN failed", None, self.secrets)
        self._latency = Operations(families.OPERATION_DURATION)
        self._errors = Counters(families.SQL_ERRORS)
        self._slow = Counters(families.SQL_SLOW)
        for q in config.queries:
            self._errors.declare(q.name)
            self._slow.declare(q.name)
            for outcome in ("ok", "error"):
                self._latency.declare(q.name, outcome)

    def describe(self) -> str:
        return f"sql {self.config.dsn}"

    def address(self) -> tuple[str, int] | None:
        return self._driver.session.endpoint.tcp() if isinstance(self._driver, _Postgres) else None

    async def collect(self) -> list[Family]:
        await self._driver.connect()
        now = time.monotonic()
        for state in self._queries:
            interval = state.query.interval
            if interval is None or now - state.last_run >= interval:
                error = await self._run(state)
                if not self._driver.alive():
                    raise ProbeError(f"connection lost: {error}")
        out = [self._latency.family(), self._errors.family(), self._slow.family()]
        for state in self._queries:
            out += state.gauges
        return out

    async def _run(self, state: _QueryState) -> str | None:
        """Run one query and record what happened; its error, if any."""
        query = state.query
        timeout = query.timeout or self.config.timeout
        threshold = query.slow_threshold or self.config.slow_threshold
        state.last_run = time.monotonic()
        start = time.perf_counter()
        try:
            rows = await self._driver.run(query.sql, timeout)
            gauges = [families.SQL_ROWS.one(float(len(rows)), query.name)]
            gauges += _metric_families(state, rows)
        except QueryError as err:
            elapsed = time.perf_counter() - start
            self._record(state, elapsed, threshold, ok=False)
            state.gauges = []
            self._queries_log.failed(query.name, str(err), target=self.config.name, query=query.name)
            return str(err)
        self._record(state, time.perf_counter() - start, threshold, ok=True)
        if query.explain:
            try:
                scans = await self._driver.full_scans(query.sql, timeout)
                gauges.append(families.SQL_FULL_SCAN.family(
                    ((query.name, table), 1.0 if full else 0.0) for table, full in sorted(scans.items())))
                self._explain_log.ok(query.name)
            except QueryError as err:
                self._explain_log.failed(query.name, str(err), target=self.config.name, query=query.name)
        self._queries_log.ok(query.name, target=self.config.name, query=query.name)
        state.gauges = gauges
        return None

    def _record(self, state: _QueryState, elapsed: float, threshold: float, ok: bool) -> None:
        name = state.query.name
        self._latency.observe(elapsed, name, "ok" if ok else "error")
        if not ok:
            self._errors.inc(name)
        if elapsed > threshold:
            self._slow.inc(name)

    async def reset(self) -> None:
        await self._driver.close()


def _metric_families(state: _QueryState, rows: Rows) -> list[Family]:
    out = []
    for metric, spec in zip(state.query.metrics, state.specs):
        samples: dict[tuple[str, ...], float] = {}
        for row in rows:
            missing = [c for c in (metric.value, *metric.labels) if c not in row]
            if missing:
                raise QueryError(f"metric {metric.name}: the query returns no column {', '.join(missing)}")
            raw = row[metric.value]
            if raw is None:
                continue  # NULL: no sample for this row
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise QueryError(f"metric {metric.name}: column {metric.value} is not a number: {raw!r:.40}") \
                    from None
            labels = tuple("" if row[c] is None else str(row[c]) for c in metric.labels)
            if labels in samples:
                raise QueryError(f"metric {metric.name}: two rows with the same labels {labels}")
            samples[labels] = value
        out.append(spec.family(samples.items()))
    return out
