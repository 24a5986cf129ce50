"""One psycopg connection to PostgreSQL or PgBouncer, kept across scrapes.

Shared by the postgres, pgbouncer and sql probes: they differ in what they ask,
not in how they connect.
"""

from __future__ import annotations

import math
from typing import Any

from exporter.collectors import BaseProbe
from exporter.redact import dsn_secrets


def tcp_address(dsn: str) -> tuple[str, int] | None:
    """The first host and port of a libpq DSN or URL; None for a socket directory or no host."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(dsn)
    except Exception:  # a DSN the driver will refuse anyway: no check
        return None
    host = str(params.get("hostaddr") or params.get("host") or "").split(",")[0]
    if not host or host.startswith("/") or host.startswith("@"):
        return None
    port = str(params.get("port") or "5432").split(",")[0]
    return (host, int(port)) if port.isdigit() else None


class PgSession:
    """One psycopg AsyncConnection kept across collects; `drop()` after any failure.

    `simple=True` forces the simple query protocol (psycopg's ClientCursor), which
    the PgBouncer admin console requires; autocommit keeps BEGIN/COMMIT out of it
    and means a probe never holds a transaction (or its snapshot) open between scrapes.
    """

    def __init__(self, dsn: str, timeout: float, simple: bool = False) -> None:
        self.dsn = dsn
        self.timeout = timeout
        self.simple = simple
        self.secrets = dsn_secrets(dsn)
        self._conn: Any = None

    @property
    def alive(self) -> bool:
        """Whether the kept connection is still usable (psycopg marks it broken on a lost server)."""
        conn = self._conn
        return conn is not None and not conn.closed and not conn.broken

    async def connection(self) -> Any:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        import psycopg
        from psycopg.rows import dict_row

        kwargs: dict[str, Any] = {
            "autocommit": True,
            # libpq wants whole seconds, at least 2 (it treats 1 as 2).
            "connect_timeout": max(2, math.ceil(self.timeout)),
            "row_factory": dict_row,
            "application_name": "apm-exporter",
        }
        if self.simple:
            kwargs["cursor_factory"] = psycopg.AsyncClientCursor
            kwargs["prepare_threshold"] = None
        self._conn = await psycopg.AsyncConnection.connect(self.dsn, **kwargs)
        return self._conn

    async def query(self, sql: str, params: tuple[Any, ...] | None = None) -> list[dict[str, Any]]:
        conn = await self.connection()
        cursor = await conn.execute(sql, params)
        return list(await cursor.fetchall()) if cursor.description else []

    async def drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # a broken connection may fail to close; it is gone either way
                pass


class SessionProbe(BaseProbe):
    """A probe that reads through one PgSession: the DSN's secrets, reset() drops the session."""

    kind = "postgresql"

    def __init__(self, dsn: str, timeout: float, simple: bool = False) -> None:
        self.session = PgSession(dsn, timeout, simple)
        self.secrets = self.session.secrets

    def describe(self) -> str:
        return f"{self.kind} {self.session.dsn}"

    def address(self) -> tuple[str, int] | None:
        return tcp_address(self.session.dsn)

    async def reset(self) -> None:
        await self.session.drop()
