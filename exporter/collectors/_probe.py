"""What every probe of a remote target shares: backoff, redaction, operation timing.

Probes (redis.py, memcached.py, pgbouncer.py, postgres.py, sql.py, http.py) keep
one connection per target, drop it on any failure and reconnect later. "Later"
is the backoff: after a failure the probe does not touch the target again for
an increasing delay and raises `BackoffError` at once instead, which the
scraper shows as `up 0` without a connect attempt per scrape against a dead
server.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from exporter.model import Family, FamilySpec
from exporter.redact import redact
from exporter.store import Histogram

BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 60.0


class ProbeError(Exception):
    """A target answered in a way the probe cannot use (already redacted)."""


class BackoffError(ProbeError):
    """Raised instead of contacting a target that failed a moment ago."""


class Backoff:
    """Exponential delay between attempts on a failing target: 1s, 2s, 4s … up to a minute.

    Success resets it, so a target that comes back is read on the first attempt
    after the current delay.
    """

    def __init__(self, initial: float = BACKOFF_INITIAL, maximum: float = BACKOFF_MAX,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.initial = initial
        self.maximum = maximum
        self._clock = clock
        self._delay = 0.0
        self._until = 0.0
        self._reason = ""

    def check(self) -> None:
        """Raise BackoffError while the delay after the last failure has not passed."""
        left = self._until - self._clock()
        if left > 0:
            raise BackoffError(f"backoff: next attempt in {left:.1f}s after: {self._reason}")

    def failed(self, reason: str) -> None:
        self._delay = self.initial if self._delay == 0 else min(self._delay * 2, self.maximum)
        self._until = self._clock() + self._delay
        self._reason = reason

    def succeeded(self) -> None:
        self._delay = 0.0
        self._until = 0.0
        self._reason = ""

    @property
    def delay(self) -> float:
        """The delay applied after the last failure (0 when the last attempt succeeded)."""
        return self._delay

    @contextlib.asynccontextmanager
    async def attempt(self, target: str, secrets: Iterable[str | None] = (),
                      drop: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[None]:
        """One read of `target` (already redacted), the way every probe does it.

        Raises BackoffError instead while the target is backing off. Any failure,
        cancellation included, calls `drop` first: a reply may be half read, so the
        connection cannot be reused. An Exception becomes a redacted ProbeError
        that starts the next delay.
        """
        self.check()
        try:
            yield
        except BaseException as err:
            if drop is not None:
                await drop()
            if not isinstance(err, Exception):
                raise
            reason = str(err) if isinstance(err, ProbeError) else describe(err, secrets)
            self.failed(reason)
            raise ProbeError(f"{target}: {reason}") from None
        self.succeeded()


# libpq key=value DSNs ("host=db password=secret"): to learn the password, so an
# error that quotes it in another form is masked too.
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def describe(err: BaseException, secrets: Iterable[str | None] = ()) -> str:
    """`Type: message` with every secret masked: drivers like to echo DSNs in errors."""
    text = str(err) or type(err).__name__
    return f"{type(err).__name__}: {redact(text, [s for s in secrets if s])}"


def url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


class Operations:
    """Cumulative latency histograms per (operation, outcome) for one probe instance.

    The collector lives across scrapes, so its histogram keeps counting like the
    StatsD path's: a probe's rate() in PromQL works the same way.
    """

    def __init__(self, spec: FamilySpec) -> None:
        self.spec = spec
        self._series: dict[tuple[str, ...], Histogram] = {}

    def declare(self, *labels: str) -> None:
        """Export an empty histogram before the first observation, so rate() sees it start."""
        if labels not in self._series:
            self._series[labels] = Histogram(self.spec.buckets)

    def observe(self, seconds: float, *labels: str) -> None:
        self.declare(*labels)
        self._series[labels].observe(seconds)

    def family(self) -> Family:
        return self.spec.family((labels, h.sample()) for labels, h in self._series.items())


class Counters:
    """Cumulative counters per label set, kept by the collector across scrapes."""

    def __init__(self, spec: FamilySpec) -> None:
        self.spec = spec
        self._values: dict[tuple[str, ...], float] = {}

    def declare(self, *labels: str) -> None:
        """Export 0 before the first increment, so rate() sees the series start."""
        self._values.setdefault(labels, 0.0)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        self._values[labels] = self._values.get(labels, 0.0) + amount

    def family(self) -> Family:
        return self.spec.family(self._values.items())


class PgSession:
    """One psycopg AsyncConnection kept across collects, closed on any failure.

    `simple=True` forces the simple query protocol (psycopg's ClientCursor), which
    the PgBouncer admin console requires; autocommit keeps BEGIN/COMMIT out of it
    and means a probe never holds a transaction (or its snapshot) open between scrapes.
    """

    def __init__(self, dsn: str, timeout: float, simple: bool = False) -> None:
        self.dsn = dsn
        self.timeout = timeout
        self.simple = simple
        self._conn: Any = None

    @property
    def secrets(self) -> list[str | None]:
        password = url_password(self.dsn)
        kv = _KV_PASSWORD.search(self.dsn)
        return [password, kv.group(2).strip("'") if kv else None]

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

    async def query(self, sql: str) -> list[dict[str, Any]]:
        conn = await self.connection()
        cursor = await conn.execute(sql)
        return list(await cursor.fetchall()) if cursor.description else []

    async def drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # a broken connection may fail to close; it is gone either way
                pass
