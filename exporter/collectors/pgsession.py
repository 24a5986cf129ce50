"""One pgwire connection to PostgreSQL, kept across scrapes, for the postgres and sql probes.

They differ in what they ask, not in how they connect. Statements go as prepared
statements of the session (pgwire.py), each with a Sync of its own, so each runs
in its own implicit transaction: a probe never holds a transaction (or its
snapshot) open between scrapes, which is what psycopg's autocommit gave before.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from exporter.collectors import BaseProbe
from exporter.collectors.pgwire import Connection, Endpoint, PgError, parse_dsn
from exporter.redact import dsn_secrets

Records = list[dict[str, Any]]

# The text formats pgtypes.py reads; UTF-8 whatever the database's encoding (the server converts).
_SETTINGS = {"DateStyle": "ISO", "client_encoding": "UTF8"}
# How long a cancelled statement may take to end before the connection is given up.
_CANCEL_GRACE = 2.0
_VERSION = re.compile(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?")  # "15.4 (Debian 15.4-1)", "16beta1", "9.6.24"


class StatementTimeout(Exception):
    """A statement ran past its timeout; the server was asked to cancel it."""


class PgSession:
    """One pgwire Connection kept across collects; `drop()` after any failure."""

    def __init__(self, dsn: str, timeout: float) -> None:
        self.dsn = dsn
        self.timeout = timeout
        self.secrets = dsn_secrets(dsn)
        self.endpoint: Endpoint = parse_dsn(dsn)
        self._conn: Connection | None = None

    @property
    def alive(self) -> bool:
        """Whether the kept connection is still usable (not lost, not left mid-answer)."""
        return self._conn is not None and self._conn.alive

    @property
    def server_version(self) -> int:
        """server_version_num's value from the connection's ParameterStatus (0 before a connection)."""
        match = _VERSION.match(self._conn.parameters.get("server_version", "") if self._conn else "")
        if match is None:
            return 0
        major, minor, patch = (int(part or 0) for part in match.groups())
        # 15.4 is 150004; before 10 the second number was part of the major version: 9.6.24 is 90624.
        return major * 10000 + minor if major >= 10 else major * 10000 + minor * 100 + patch

    async def connection(self) -> Connection:
        if self._conn is None or not self._conn.alive:
            await self.drop()
            self._conn = await Connection.open(self.endpoint, {**_SETTINGS, "application_name": "apm-exporter"}
                                               if not self.endpoint.application_name else _SETTINGS)
        return self._conn

    async def query(self, sql: str) -> Records:
        return (await self.pipeline([sql]))[0]

    async def pipeline(self, sqls: Sequence[str]) -> list[Records]:
        """Every statement in one round trip; PgError (the connection still usable) if one of them failed."""
        conn = await self.connection()
        return [result.records() for result in await conn.pipeline(sqls, prepared=True)]

    async def bounded(self, sql: str, timeout: float) -> Records:
        """One statement cancelled on the server when it runs past `timeout` (StatementTimeout), so the
        connection stays usable; given up (dropped) if the cancelled statement does not end soon after."""
        conn = await self.connection()
        task = asyncio.ensure_future(conn.pipeline([sql], prepared=True))
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if done:
                return task.result()[0].records()
            try:
                await asyncio.wait_for(conn.cancel(), _CANCEL_GRACE)
                await asyncio.wait_for(task, _CANCEL_GRACE)
            except PgError:
                pass  # 57014: canceling statement due to user request, the answer we asked for
            except (TimeoutError, OSError):
                await self.drop()  # the cancel did not get through, or the statement did not end: give up
            raise StatementTimeout(f"timed out after {timeout:g}s")
        finally:
            if not task.done():
                task.cancel()  # the collect itself was cancelled: the connection is out of step now
            elif not task.cancelled():
                task.exception()  # retrieved: the caller has seen or replaced it

    async def drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


class SessionProbe(BaseProbe):
    """A probe that reads through one PgSession: the DSN's secrets, reset() drops the session."""

    kind = "postgresql"

    def __init__(self, dsn: str, timeout: float) -> None:
        self.session = PgSession(dsn, timeout)
        self.secrets = self.session.secrets

    def describe(self) -> str:
        return f"{self.kind} {self.session.dsn}"

    def address(self) -> tuple[str, int] | None:
        return self.session.endpoint.tcp()

    async def reset(self) -> None:
        await self.session.drop()
