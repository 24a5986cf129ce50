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
no statement text; only the top N texts are fetched.

The role needs pg_monitor (or superuser) to see other roles' sessions and
statements; without it their state reads as `unknown` and their text as
`<insufficient privilege>`.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from exporter import families
from exporter.collectors.pgsession import SessionProbe
from exporter.model import Family
from exporter.redact import MASK, redact
from exporter.schema import Target

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
# Ranked without the texts (pg_stat_statements(false)), then the texts of the top N only:
# reading and sorting every statement's text is what makes exporters time out on big servers.
# Grouped by (database, queryid): the view has a row per role and per toplevel flag too,
# and those would be duplicate series under our labels. PostgreSQL has no call that
# returns one statement's text, so the second scan still has the server load its text
# file, but only the top N texts are grouped, joined and sent.
_STATEMENTS = """
WITH top AS (
    SELECT dbid, queryid, sum(calls)::float8 AS calls, sum({total})::float8 AS total_ms
    FROM pg_stat_statements(false)
    WHERE queryid IS NOT NULL
    GROUP BY dbid, queryid
    ORDER BY total_ms DESC
    LIMIT {limit}
), texts AS (
    SELECT s.dbid, s.queryid, min(s.query) AS query
    FROM pg_stat_statements(true) s JOIN top t ON t.dbid = s.dbid AND t.queryid = s.queryid
    GROUP BY s.dbid, s.queryid
)
SELECT d.datname AS database, t.queryid::text AS queryid, x.query, t.calls, t.total_ms
FROM top t
JOIN pg_database d ON d.oid = t.dbid
LEFT JOIN texts x ON x.dbid = t.dbid AND x.queryid = t.queryid
ORDER BY t.total_ms DESC
"""


class Config(Target):
    """A PostgreSQL server; `statements` is how many top statements to export (0: none)."""

    dsn: str = Field(default="postgresql://postgres@127.0.0.1:5432/postgres", min_length=1)
    statements: int = Field(default=10, ge=0, le=1000)


class PostgresCollector(SessionProbe):
    kind = "postgres"

    def __init__(self, config: Config) -> None:
        super().__init__(config.dsn, config.timeout)
        self.config = config

    async def collect(self) -> list[Family]:
        target = self.config.name
        settings = (await self.session.query(_SETTINGS))[0]
        states = {"active": 0.0, "idle": 0.0}
        for row in await self.session.query(_STATES):
            state = _SPACES.sub("_", str(row["state"]).replace("(", "").replace(")", "").strip())
            states[state] = states.get(state, 0.0) + float(row["n"])
        out = [
            families.POOL_CONNECTIONS.family(((target, state), n) for state, n in states.items()),
            families.POOL_MAX_CONNECTIONS.one(float(settings["max_connections"]), target),
        ]
        if self.config.statements and settings["statements"]:
            # PostgreSQL 13 renamed total_time to total_exec_time.
            total = "total_exec_time" if settings["version"] >= 130000 else "total_time"
            rows = await self.session.query(_STATEMENTS.format(total=total, limit=int(self.config.statements)))
            out += _statement_families(target, rows)
        return out


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
