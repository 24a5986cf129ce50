"""PgBouncer: SHOW POOLS, SHOW DATABASES and SHOW STATS into the pool families.

One pool per PgBouncer database, labelled `<target>/<database>`: PgBouncer keeps
a pool per (database, user) pair, but SHOW STATS and the configured limits are
per database, and per database is what a dashboard compares. The admin console
(`pgbouncer` database) speaks only the simple query protocol, hence the
ClientCursor session (see pgsession.PgSession).

What goes where:
- pool_connections{state}: server connections; active (linked to a client),
  idle (sv_idle + sv_used), opening (sv_login + sv_tested);
- pool_clients{state}: client connections; active (paired with a server), waiting;
- pool_pending_requests: clients waiting (the same cl_waiting, in the family the
  StatsD path and the client library fill);
- pool_max_wait_seconds: age of the oldest waiting client;
- pool_max_connections: pool_size × user pools, capped by max_db_connections;
- pool_wait_seconds_total, pool_queries_total, pool_query_seconds_total: SHOW STATS.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import Field

from exporter import families
from exporter.collectors.pgsession import SessionProbe
from exporter.model import Family
from exporter.schema import Target

_ADMIN_DB = "pgbouncer"


class Config(Target):
    """A PgBouncer admin console: the DSN's user must be in admin_users or stats_users."""

    dsn: str = Field(default="postgresql://pgbouncer@127.0.0.1:6432/pgbouncer", min_length=1)


class PgBouncerCollector(SessionProbe):
    kind = "pgbouncer"

    def __init__(self, config: Config) -> None:
        super().__init__(config.dsn, config.timeout, simple=True)
        self.config = config

    async def collect(self) -> list[Family]:
        pools = await self.session.query("SHOW POOLS")
        databases = await self.session.query("SHOW DATABASES")
        stats = await self.session.query("SHOW STATS")
        return _families(self.config.name, pools, databases, stats)


def _num(row: dict[str, Any], key: str) -> float:
    value = row.get(key)
    return float(value) if value is not None else 0.0


def _families(target: str, pools: list[dict[str, Any]], databases: list[dict[str, Any]],
              stats: list[dict[str, Any]]) -> list[Family]:
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
