"""PgBouncer: SHOW POOLS, DATABASES, STATS, LISTS, MEM, CONFIG, CLIENTS and SERVERS, pipelined.

One pool per PgBouncer database, labelled `<target>/<database>`: PgBouncer keeps
a pool per (database, user) pair, but SHOW STATS and the configured limits are
per database, and per database is what a dashboard compares. The admin console
(`pgbouncer` database) speaks only the simple query protocol; the probe sends
every SHOW in one write and reads their answers in order over one kept
connection (pgwire.Connection: one round trip a scrape, and no psycopg).

What goes where:
- pool_connections{state}: server connections; active (linked to a client),
  idle (sv_idle + sv_used), opening (sv_login + sv_tested);
- pool_clients{state}: client connections; active (paired with a server), waiting;
- pool_pending_requests: clients waiting (the same cl_waiting, in the family the
  StatsD path and the client library fill);
- pool_max_wait_seconds: age of the oldest waiting client;
- pool_max_connections: pool_size × user pools, capped by max_db_connections;
- pool_wait_seconds_total, pool_queries_total, pool_query_seconds_total: SHOW STATS.

And the pooler itself, from SHOW LISTS, MEM, CONFIG, CLIENTS and SERVERS: its
client connections against max_client_conn (beyond it PgBouncer refuses clients,
the admin console included), its internal lists and object caches, clients per
database and application_name (who holds the connections), and server
connections per backend address and state.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from exporter import families
from exporter.collectors import BaseProbe
from exporter.collectors.configs.pgbouncer import Config
from exporter.collectors.pgwire import Connection, Endpoint, Row, parse_dsn
from exporter.model import Family
from exporter.redact import dsn_secrets

_ADMIN_DB = "pgbouncer"
_SHOWS = ("SHOW POOLS", "SHOW DATABASES", "SHOW STATS", "SHOW LISTS", "SHOW MEM", "SHOW CLIENTS", "SHOW SERVERS")
# SHOW CONFIG is two thirds of the answer's bytes (80-odd settings) for the one setting read, which
# changes only at a RELOAD or a SET: read on each new connection, then at most this often.
CONFIG_EVERY = 60.0

_POOL_COLUMNS = ("database", "sv_active", "sv_idle", "sv_used", "sv_login", "sv_tested", "cl_active", "cl_waiting",
                 "maxwait", "maxwait_us")
_DATABASE_COLUMNS = ("name", "pool_size", "max_connections")
_STATS_COLUMNS = ("database", "total_wait_time", "total_query_count", "total_query_time")


class PgBouncerCollector(BaseProbe):
    kind = "pgbouncer"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.endpoint: Endpoint = parse_dsn(config.dsn)
        self.secrets = dsn_secrets(config.dsn)
        self._conn: Connection | None = None
        self._max_client_conn: list[Row] = []  # SHOW CONFIG's max_client_conn row, as last read
        self._config_at = -math.inf

    def describe(self) -> str:
        return f"{self.kind} {self.config.dsn}"

    def address(self) -> tuple[str, int] | None:
        return self.endpoint.tcp()

    async def collect(self) -> list[Family]:
        if self._conn is None:
            self._conn = await Connection.open(self.endpoint)
            self._config_at = -math.inf
        now = time.monotonic()
        shows = _SHOWS + ("SHOW CONFIG",) if now - self._config_at >= CONFIG_EVERY else _SHOWS
        # Each answer by the statement it answers (pgwire ties them by order; the names make a mix-up here loud).
        got = {result.statement: result for result in await self._conn.pipeline(shows)}
        if "SHOW CONFIG" in got:
            row = got["SHOW CONFIG"].find("max_client_conn")
            self._max_client_conn, self._config_at = ([row] if row else []), now
        # Only the columns read below are decoded: SHOW CLIENTS has a row per client, thousands on a busy pooler.
        return (_families(self.config.name, got["SHOW POOLS"].rows(_POOL_COLUMNS),
                          got["SHOW DATABASES"].rows(_DATABASE_COLUMNS), got["SHOW STATS"].rows(_STATS_COLUMNS))
                + pooler_families(self.config.name, got["SHOW LISTS"].rows(), got["SHOW MEM"].rows(("name", "memtotal")),
                                  self._max_client_conn, got["SHOW CLIENTS"].rows(("database", "application_name")),
                                  got["SHOW SERVERS"].rows(("database", "addr", "port", "state"))))

    async def reset(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


def _num(row: Mapping[str, Any], key: str) -> float:
    value = row.get(key)
    return float(value) if value is not None else 0.0


def _families(target: str, pools: list[Row], databases: list[Row],
              stats: list[Row]) -> list[Family]:
    names = [str(db["name"]) for db in databases if db.get("name") != _ADMIN_DB]
    names += [str(p["database"]) for p in pools if p.get("database") != _ADMIN_DB and p["database"] not in names]
    servers: dict[str, dict[str, float]] = {n: defaultdict(float) for n in names}
    clients: dict[str, dict[str, float]] = {n: defaultdict(float) for n in names}
    max_wait: dict[str, float] = dict.fromkeys(names, 0.0)
    user_pools: dict[str, int] = dict.fromkeys(names, 0)
    for row in pools:
        db = str(row.get("database"))
        if db == _ADMIN_DB:
            continue
        user_pools[db] += 1
        servers[db]["active"] += _num(row, "sv_active")
        servers[db]["idle"] += _num(row, "sv_idle") + _num(row, "sv_used")
        servers[db]["opening"] += _num(row, "sv_login") + _num(row, "sv_tested")
        clients[db]["active"] += _num(row, "cl_active")
        clients[db]["waiting"] += _num(row, "cl_waiting")
        max_wait[db] = max(max_wait[db], _num(row, "maxwait") + _num(row, "maxwait_us") / 1e6)

    limits: dict[str, float] = {}
    for row in databases:
        db = str(row.get("name"))
        if db not in servers:
            continue
        limit = _num(row, "pool_size") * max(1, user_pools[db])
        cap = _num(row, "max_connections")  # max_db_connections; 0 means unlimited
        limits[db] = min(limit, cap) if cap > 0 else limit

    def pool(db: str) -> str:
        return f"{target}/{db}"

    wait_time: list[tuple[tuple[str, ...], float]] = []
    queries: list[tuple[tuple[str, ...], float]] = []
    query_time: list[tuple[tuple[str, ...], float]] = []
    for row in stats:
        db = str(row.get("database"))
        if db not in servers:
            continue
        # PgBouncer reports times in microseconds.
        wait_time.append(((pool(db),), _num(row, "total_wait_time") / 1e6))
        queries.append(((pool(db),), _num(row, "total_query_count")))
        query_time.append(((pool(db),), _num(row, "total_query_time") / 1e6))

    return [
        families.POOL_CONNECTIONS.family(
            ((pool(db), state), servers[db][state]) for db in names for state in ("active", "idle", "opening")),
        families.POOL_CLIENTS.family(
            ((pool(db), state), clients[db][state]) for db in names for state in ("active", "waiting")),
        families.POOL_PENDING.family(((pool(db),), clients[db]["waiting"]) for db in names),
        families.POOL_MAX_WAIT.family(((pool(db),), max_wait[db]) for db in names),
        families.POOL_MAX_CONNECTIONS.family(((pool(db),), limits[db]) for db in names if db in limits),
        families.POOL_WAIT_TIME.family(wait_time),
        families.POOL_QUERIES.family(queries),
        families.POOL_QUERY_TIME.family(query_time),
    ]


def pooler_families(target: str, lists: list[Row], mem: list[Row],
                    config: list[Row], clients: list[Row],
                    servers: list[Row]) -> list[Family]:
    """SHOW LISTS, MEM, CONFIG, CLIENTS and SERVERS: the pooler itself, not one of its pools."""
    items = {str(row["list"]): _num(row, "items") for row in lists}
    settings = {str(row["key"]): row.get("value") for row in config}
    out = [
        families.PGBOUNCER_LIST_ITEMS.family(((target, name), n) for name, n in items.items()),
        families.PGBOUNCER_MEMORY.family(((target, str(row["name"])), _num(row, "memtotal")) for row in mem),
        # Every client connection counts against max_client_conn, the admin console's too.
        families.PGBOUNCER_CLIENT_CONNECTIONS.one(items.get("used_clients", 0.0) + items.get("login_clients", 0.0),
                                                  target),
    ]
    try:
        out.append(families.PGBOUNCER_MAX_CLIENT_CONNECTIONS.one(float(settings["max_client_conn"] or 0), target))
    except (KeyError, ValueError):
        pass  # a stats_users role may not see SHOW CONFIG's value: no sample rather than a zero
    apps: dict[tuple[str, str, str], float] = defaultdict(float)
    for row in clients:
        if row.get("database") != _ADMIN_DB:
            apps[(target, str(row.get("database")), str(row.get("application_name") or ""))] += 1
    backends: dict[tuple[str, str, str, str], float] = defaultdict(float)
    for row in servers:
        backend = f"{row.get('addr')}:{row.get('port')}"
        backends[(target, str(row.get("database")), backend, str(row.get("state")))] += 1
    out += [families.PGBOUNCER_APPLICATION_CLIENTS.family(apps.items()),
            families.PGBOUNCER_SERVER_CONNECTIONS.family(backends.items())]
    return out
