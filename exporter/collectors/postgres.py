"""PostgreSQL: connections by state against max_connections, and the top statements.

The server's connection slots are a pool too: pool_connections{pool=<target>,
state} counts client backends by pg_stat_activity state (active, idle,
idle_in_transaction, …; the probe's own connection is one of the active ones)
and pool_max_connections is max_connections, so "how close are we to running
out" is the same query as for any other pool.

When pg_stat_statements is installed in the DSN's database, the top N
statements by total execution time (across all databases) are exported with
their calls, total and mean time. N bounds the series count; a statement that
drops out of the top N disappears (as with any top-N export). The ranking reads
no statement text; a text is read once, when its statement enters the top N.

Server depth, all from the one connection: every database of the server
(pg_stat_database: transactions, buffer hits and reads as cache_requests_total
{cache=<target>/<database>}, deadlocks, temporary files, recovery conflicts,
size, transaction ID age) and its sessions by state as the pool
`<target>/<database>` against its CONNECTION LIMIT (or max_connections);
replication from either side (a primary: per replica, bytes and seconds not yet
replayed; a replica: what it received but has not replayed, and whether its WAL
receiver streams); the oldest open transaction and idle-in-transaction session;
locks by mode, granted or waiting; the checkpointer and background writer; and
the biggest N tables of the DSN's database with their vacuum and analyze
history (pg_stat_user_tables is per database).

The role needs pg_monitor (or superuser) to see other roles' sessions and
statements; without it their state reads as `unknown` and their text as
`<insufficient privilege>`.
"""

from __future__ import annotations

import re
from typing import Any

from exporter import families
from exporter.collectors.configs.postgres import Config
from exporter.collectors.pgsession import SessionProbe
from exporter.model import Family, Sample
from exporter.redact import MASK, redact

_QUERY_LABEL_MAX = 160
_SPACES = re.compile(r"\s+")
# pg_stat_statements keeps utility statements verbatim: `ALTER ROLE app PASSWORD 'pw'`
# (and CREATE ROLE/USER … PASSWORD) would put a password into a label.
_SQL_PASSWORD = re.compile(r"(\bPASSWORD\s+)(E?'(?:[^'\\]|''|\\.)*'|\$(\w*)\$.*?\$\3\$)", re.IGNORECASE)

_SETTINGS = """
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('server_version_num')::int AS version,
       EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') AS statements
"""
_STATES = """
SELECT COALESCE(state, 'unknown') AS state, count(*) AS n
FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1
"""
# Ranked without the texts (pg_stat_statements(false)): reading and sorting every
# statement's text is what makes exporters time out on big servers. Grouped by
# (database, queryid): the view has a row per role and per toplevel flag too, and those
# would be duplicate series under our labels.
_RANKING = """
SELECT s.dbid, d.datname AS database, s.queryid::text AS queryid,
       sum(s.calls)::float8 AS calls, sum(s.{total})::float8 AS total_ms
FROM pg_stat_statements(false) s JOIN pg_database d ON d.oid = s.dbid
WHERE s.queryid IS NOT NULL
GROUP BY s.dbid, d.datname, s.queryid
ORDER BY total_ms DESC
LIMIT {limit}
"""
# Texts only for statements that entered the top N since the last scrape. PostgreSQL has
# no call for one statement's text (this scan still loads the server's text file), so the
# probe keeps the texts of the current top N: a steady top N never reads a text again.
_TEXTS = """
SELECT dbid, queryid::text AS queryid, min(query) AS query
FROM pg_stat_statements(true)
WHERE queryid = ANY('{{{ids}}}'::bigint[])
GROUP BY dbid, queryid
"""



_DATABASES = """
SELECT d.datname AS database, s.xact_commit::float8 AS commits, s.xact_rollback::float8 AS rollbacks,
       s.blks_hit::float8 AS hits, s.blks_read::float8 AS reads, s.deadlocks::float8 AS deadlocks,
       s.temp_bytes::float8 AS temp_bytes, s.temp_files::float8 AS temp_files,
       s.conflicts::float8 AS conflicts, pg_database_size(d.oid)::float8 AS size,
       age(d.datfrozenxid)::float8 AS xid_age, d.datconnlimit AS connlimit
FROM pg_database d JOIN pg_stat_database s ON s.datid = d.oid
WHERE d.datallowconn AND NOT d.datistemplate
"""
_DATABASE_STATES = """
SELECT datname AS database, COALESCE(state, 'unknown') AS state, count(*) AS n
FROM pg_stat_activity WHERE backend_type = 'client backend' AND datname IS NOT NULL GROUP BY 1, 2
"""
# The probe's own session is in a transaction while it asks; it is left out.
_TRANSACTIONS = """
SELECT COALESCE(max(extract(epoch FROM now() - xact_start)), 0)::float8 AS oldest,
       COALESCE(max(extract(epoch FROM now() - state_change))
                FILTER (WHERE state LIKE 'idle in transaction%'), 0)::float8 AS oldest_idle,
       count(*) FILTER (WHERE state LIKE 'idle in transaction%') AS idle_in_transaction
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND xact_start IS NOT NULL AND pid <> pg_backend_pid()
"""
_LOCKS = """
SELECT mode, granted, count(*) AS n FROM pg_locks WHERE pid <> pg_backend_pid() GROUP BY 1, 2
"""
_REPLICAS = """
SELECT COALESCE(NULLIF(application_name, ''), host(client_addr), 'local') AS replica,
       COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::float8 AS lag_bytes,
       COALESCE(extract(epoch FROM replay_lag), 0)::float8 AS lag_seconds
FROM pg_stat_replication
"""
# On a replica: bytes received but not yet replayed, and how far replay is behind the primary's
# commits (0 when everything received is replayed: an idle primary is no lag; NULL while WAL
# waits but no commit has been replayed since the replica started, so there is no time to go by).
_STANDBY = """
SELECT COALESCE(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)::float8 AS lag_bytes,
       CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END::float8 AS lag_seconds,
       EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') AS streaming,
       pg_is_in_recovery() AS recovery
"""
# PostgreSQL 17 moved the checkpointer's columns out of pg_stat_bgwriter.
_CHECKPOINTS_16 = """
SELECT checkpoints_timed::float8 AS timed, checkpoints_req::float8 AS requested,
       checkpoint_write_time::float8 AS write_ms, checkpoint_sync_time::float8 AS sync_ms,
       buffers_checkpoint::float8 AS checkpointer, buffers_clean::float8 AS bgwriter,
       buffers_backend::float8 AS backend, maxwritten_clean::float8 AS maxwritten,
       buffers_alloc::float8 AS allocated
FROM pg_stat_bgwriter
"""
_CHECKPOINTS_17 = """
SELECT c.num_timed::float8 AS timed, c.num_requested::float8 AS requested,
       c.write_time::float8 AS write_ms, c.sync_time::float8 AS sync_ms,
       c.buffers_written::float8 AS checkpointer, b.buffers_clean::float8 AS bgwriter,
       NULL::float8 AS backend, b.maxwritten_clean::float8 AS maxwritten, b.buffers_alloc::float8 AS allocated
FROM pg_stat_checkpointer c, pg_stat_bgwriter b
"""
_TABLES = """
SELECT current_database() AS database, t.schemaname AS schema, t.relname AS "table",
       pg_total_relation_size(t.relid)::float8 AS size, t.n_live_tup::float8 AS live,
       t.n_dead_tup::float8 AS dead,
       (t.vacuum_count + t.autovacuum_count)::float8 AS vacuums,
       (t.analyze_count + t.autoanalyze_count)::float8 AS analyzes,
       extract(epoch FROM now() - GREATEST(t.last_vacuum, t.last_autovacuum))::float8 AS vacuum_age,
       extract(epoch FROM now() - GREATEST(t.last_analyze, t.last_autoanalyze))::float8 AS analyze_age,
       age(c.relfrozenxid)::float8 AS xid_age
FROM pg_stat_user_tables t JOIN pg_class c ON c.oid = t.relid
ORDER BY size DESC, t.schemaname, t.relname
LIMIT {limit}
"""


class PostgresCollector(SessionProbe):
    kind = "postgres"

    def __init__(self, config: Config) -> None:
        super().__init__(config.dsn, config.timeout)
        self.config = config
        # (dbid, queryid) → text for the current top statements; a queryid's text never changes.
        self._texts: dict[tuple[Any, str], str] = {}

    async def collect(self) -> list[Family]:
        """One round trip for the settings, the sessions and the server depth; pg_stat_statements
        (whose presence the settings tell) a second one, and a third when new statements need texts."""
        target = self.config.name
        await self.session.connection()  # its ParameterStatus names the server's version
        depth = self._depth_queries(self.session.server_version) if self.config.server else []
        settings_rows, state_rows, *answers = await self.session.pipeline([_SETTINGS, _STATES, *depth])
        settings = settings_rows[0]
        states = {"active": 0.0, "idle": 0.0}
        for row in state_rows:
            state = _state(row["state"])
            states[state] = states.get(state, 0.0) + float(row["n"])
        out = [
            families.POOL_CONNECTIONS.family(((target, state), n) for state, n in states.items()),
            families.POOL_MAX_CONNECTIONS.one(float(settings["max_connections"]), target),
        ]
        if self.config.statements and settings["statements"]:
            # PostgreSQL 13 renamed total_time to total_exec_time.
            total = "total_exec_time" if settings["version"] >= 130000 else "total_time"
            out += _statement_families(target, await self._top_statements(total))
        if self.config.server:
            out = merged(out + self._server_depth(target, settings, answers))
        return out

    def _depth_queries(self, version: int) -> list[str]:
        checkpoints = _CHECKPOINTS_17 if version >= 170000 else _CHECKPOINTS_16
        sqls = [_DATABASES, _DATABASE_STATES, _TRANSACTIONS, _LOCKS, _STANDBY, _REPLICAS, checkpoints]
        if self.config.tables:
            sqls.append(_TABLES.format(limit=int(self.config.tables)))
        return sqls

    def _server_depth(self, target: str, settings: dict[str, Any], answers: list[list[dict[str, Any]]]) \
            -> list[Family]:
        dbs, db_states, transactions, locks, standby, replicas, checkpoint, *tables = answers
        out = database_families(target, dbs, db_states, float(settings["max_connections"]))
        out += activity_families(target, transactions[0], locks)
        if standby[0]["recovery"]:
            out += standby_families(target, standby[0])
        else:
            out += [families.POSTGRES_IN_RECOVERY.one(0.0, target)]
        out += replica_families(target, replicas)
        out += checkpoint_families(target, checkpoint[0])
        if tables:
            out += table_families(target, tables[0])
        return out

    async def _top_statements(self, total: str) -> list[dict[str, Any]]:
        rows = await self.session.query(_RANKING.format(total=total, limit=int(self.config.statements)))
        keys = [(row["dbid"], row["queryid"]) for row in rows]
        missing = sorted({queryid for dbid, queryid in keys if (dbid, queryid) not in self._texts})
        if missing:
            # queryid::text of a bigint: int() keeps anything else out of the statement.
            ids = ",".join(str(int(queryid)) for queryid in missing)
            for row in await self.session.query(_TEXTS.format(ids=ids)):
                self._texts[(row["dbid"], row["queryid"])] = str(row["query"] or "")
        self._texts = {key: self._texts[key] for key in keys if key in self._texts}
        return [{**row, "query": self._texts.get((row["dbid"], row["queryid"]), "")} for row in rows]


def query_label(text: str) -> str:
    """A statement's text as a label: one line, at most 160 characters, passwords masked."""
    flat = redact(_SQL_PASSWORD.sub(rf"\1'{MASK}'", _SPACES.sub(" ", text).strip()))
    return flat if len(flat) <= _QUERY_LABEL_MAX else flat[: _QUERY_LABEL_MAX - 1] + "…"


def _statement_families(target: str, rows: list[dict[str, Any]]) -> list[Family]:
    calls, total, mean = [], [], []
    for row in rows:
        labels = (target, str(row["database"]), str(row["queryid"]), query_label(str(row["query"] or "")))
        seconds = float(row["total_ms"] or 0) / 1000.0
        n = float(row["calls"] or 0)
        calls.append((labels, n))
        total.append((labels, seconds))
        mean.append((labels, seconds / n if n else 0.0))
    return [
        families.POSTGRES_STATEMENT_CALLS.family(calls),
        families.POSTGRES_STATEMENT_TIME.family(total),
        families.POSTGRES_STATEMENT_MEAN.family(mean),
    ]


def merged(fams: list[Family]) -> list[Family]:
    """One family per spec: the server-wide and per-database pools go into the same two families."""
    by_spec: dict[Any, list[Sample]] = {}
    for fam in fams:
        by_spec.setdefault(fam.spec, []).extend(fam.samples)
    return [Family(spec, samples) for spec, samples in by_spec.items()]


def _state(raw: object) -> str:
    """pg_stat_activity's state as a label value: `idle in transaction (aborted)` → idle_in_transaction_aborted."""
    return _SPACES.sub("_", str(raw).replace("(", "").replace(")", "").strip())


def database_families(target: str, rows: list[dict[str, Any]], states: list[dict[str, Any]],
                      max_connections: float) -> list[Family]:
    def f(row: dict[str, Any], key: str) -> float:
        return float(row[key] or 0)

    names = [str(row["database"]) for row in rows]
    pool = {name: f"{target}/{name}" for name in names}
    by_state: dict[tuple[str, str], float] = {}
    for name in names:
        by_state[(pool[name], "active")] = by_state[(pool[name], "idle")] = 0.0
    for row in states:
        if str(row["database"]) in pool:
            key = (pool[str(row["database"])], _state(row["state"]))
            by_state[key] = by_state.get(key, 0.0) + float(row["n"])
    level = ""
    per_db = [(row, (target, str(row["database"]))) for row in rows]
    return [
        families.POOL_CONNECTIONS.family(by_state.items()),
        # CONNECTION LIMIT -1 is none: the server's max_connections is then the database's limit too.
        families.POOL_MAX_CONNECTIONS.family(
            ((pool[str(row["database"])],), float(row["connlimit"]) if row["connlimit"] >= 0 else max_connections)
            for row in rows),
        families.CACHE_REQUESTS.family(
            item for row in rows for item in (((pool[str(row["database"])], level, "hit"), f(row, "hits")),
                                              ((pool[str(row["database"])], level, "miss"), f(row, "reads")))),
        families.POSTGRES_TRANSACTIONS.family(
            item for row, labels in per_db for item in (((*labels, "commit"), f(row, "commits")),
                                                        ((*labels, "rollback"), f(row, "rollbacks")))),
        families.POSTGRES_DEADLOCKS.family((labels, f(row, "deadlocks")) for row, labels in per_db),
        families.POSTGRES_TEMP_BYTES.family((labels, f(row, "temp_bytes")) for row, labels in per_db),
        families.POSTGRES_TEMP_FILES.family((labels, f(row, "temp_files")) for row, labels in per_db),
        families.POSTGRES_CONFLICTS.family((labels, f(row, "conflicts")) for row, labels in per_db),
        families.POSTGRES_DATABASE_SIZE.family((labels, f(row, "size")) for row, labels in per_db),
        families.POSTGRES_DATABASE_XID_AGE.family((labels, f(row, "xid_age")) for row, labels in per_db),
    ]


def activity_families(target: str, transactions: dict[str, Any], locks: list[dict[str, Any]]) -> list[Family]:
    held: dict[tuple[str, str, str], float] = {}
    for row in locks:
        key = (target, str(row["mode"]), "granted" if row["granted"] else "waiting")
        held[key] = held.get(key, 0.0) + float(row["n"])
    return [
        families.POSTGRES_OLDEST_TRANSACTION.one(float(transactions["oldest"]), target),
        families.POSTGRES_OLDEST_IDLE_IN_TRANSACTION.one(float(transactions["oldest_idle"]), target),
        families.POSTGRES_LOCKS.family(held.items()),
    ]


def standby_families(target: str, row: dict[str, Any]) -> list[Family]:
    return [
        families.POSTGRES_IN_RECOVERY.one(1.0, target),
        families.POSTGRES_WAL_RECEIVER_UP.one(1.0 if row["streaming"] else 0.0, target),
        families.POSTGRES_REPLAY_LAG_BYTES.one(float(row["lag_bytes"]), target),
    ] + ([] if row["lag_seconds"] is None else [families.POSTGRES_REPLAY_LAG_SECONDS.one(float(row["lag_seconds"]), target)])


def replica_families(target: str, rows: list[dict[str, Any]]) -> list[Family]:
    return [
        families.POSTGRES_REPLICA_LAG_BYTES.family(((target, str(r["replica"])), float(r["lag_bytes"])) for r in rows),
        families.POSTGRES_REPLICA_LAG_SECONDS.family(
            ((target, str(r["replica"])), float(r["lag_seconds"])) for r in rows),
    ]


def checkpoint_families(target: str, row: dict[str, Any]) -> list[Family]:
    writers = [("checkpointer", row["checkpointer"]), ("bgwriter", row["bgwriter"]), ("backend", row["backend"])]
    return [
        families.POSTGRES_CHECKPOINTS.family([((target, "timed"), float(row["timed"])),
                                              ((target, "requested"), float(row["requested"]))]),
        families.POSTGRES_CHECKPOINT_TIME.family([((target, "write"), float(row["write_ms"]) / 1000.0),
                                                  ((target, "sync"), float(row["sync_ms"]) / 1000.0)]),
        # PostgreSQL 17 no longer counts backends' own writes here: no sample rather than a zero.
        families.POSTGRES_BUFFERS_WRITTEN.family(((target, w), float(n)) for w, n in writers if n is not None),
        families.POSTGRES_BGWRITER_STOPS.one(float(row["maxwritten"]), target),
        families.POSTGRES_BUFFERS_ALLOCATED.one(float(row["allocated"]), target),
    ]


def table_families(target: str, rows: list[dict[str, Any]]) -> list[Family]:
    def labels(row: dict[str, Any]) -> tuple[str, ...]:
        return (target, str(row["database"]), str(row["schema"]), str(row["table"]))

    return [
        families.POSTGRES_TABLE_SIZE.family((labels(r), float(r["size"])) for r in rows),
        families.POSTGRES_TABLE_LIVE_TUPLES.family((labels(r), float(r["live"])) for r in rows),
        families.POSTGRES_TABLE_DEAD_TUPLES.family((labels(r), float(r["dead"])) for r in rows),
        families.POSTGRES_TABLE_VACUUMS.family((labels(r), float(r["vacuums"])) for r in rows),
        families.POSTGRES_TABLE_ANALYZES.family((labels(r), float(r["analyzes"])) for r in rows),
        # Never vacuumed (or analyzed): no age; the counts above are 0 then.
        families.POSTGRES_TABLE_VACUUM_AGE.family((labels(r), float(r["vacuum_age"])) for r in rows
                                                  if r["vacuum_age"] is not None),
        families.POSTGRES_TABLE_ANALYZE_AGE.family((labels(r), float(r["analyze_age"])) for r in rows
                                                   if r["analyze_age"] is not None),
        families.POSTGRES_TABLE_XID_AGE.family((labels(r), float(r["xid_age"])) for r in rows),
    ]
