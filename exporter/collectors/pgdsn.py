"""libpq DSNs and URLs read into an Endpoint, for the PostgreSQL-protocol probes and their configs.

Apart from the wire code (pgwire.py) so that a config section can refuse a DSN the
probe cannot read at load without the daemon importing the client: the probe's
module is loaded only once a target of it is configured.
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_KEYS = {"host", "hostaddr", "port", "user", "password", "dbname", "sslmode", "sslrootcert", "sslcert",
         "sslkey", "connect_timeout", "application_name", "passfile", "options"}
_ENV = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD",
        "dbname": "PGDATABASE", "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT",
        "passfile": "PGPASSFILE", "options": "PGOPTIONS"}
_KV = re.compile(r"\s*(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)")


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to connect, from a libpq DSN or URL."""

    host: str = "/var/run/postgresql"  # a leading / is a socket directory (libpq's default on Debian)
    hostaddr: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    dbname: str = ""
    sslmode: str = "prefer"
    sslrootcert: str = ""
    sslcert: str = ""
    sslkey: str = ""
    application_name: str = ""
    options: str = ""  # server settings for the session, `-c statement_timeout=5s` (not for PgBouncer's console)
    passfile: str = ""

    @property
    def socket(self) -> str:
        """The unix socket's path, or "" for TCP."""
        return f"{self.host}/.s.PGSQL.{self.port}" if self.host.startswith("/") and not self.hostaddr else ""

    def tcp(self) -> tuple[str, int] | None:
        return None if self.socket else (self.hostaddr or self.host, self.port)


def _kv_pairs(dsn: str) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(dsn.rstrip()):
        match = _KV.match(dsn, pos)
        if match is None:
            raise ValueError(f"cannot read the DSN near {dsn[pos:pos + 20]!r}")
        value = match.group(2)
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out[match.group(1)] = value
        pos = match.end()
    return out


def _url_pairs(dsn: str) -> dict[str, str]:
    parts = urlsplit(dsn)
    out: dict[str, str] = {}
    if "," in parts.netloc:
        raise ValueError("several hosts in one DSN are not supported")
    host = unquote(parts.hostname or "")
    if host:
        out["host"] = host
    if parts.port:
        out["port"] = str(parts.port)
    if parts.username:
        out["user"] = unquote(parts.username)
    if parts.password:
        out["password"] = unquote(parts.password)
    if parts.path.strip("/"):
        out["dbname"] = unquote(parts.path.lstrip("/"))
    out.update(parse_qsl(parts.query))
    return out


def parse_dsn(dsn: str) -> Endpoint:
    """An Endpoint from a URL or key=value DSN, libpq's environment defaults filling the gaps."""
    pairs = _url_pairs(dsn) if re.match(r"postgres(ql)?://", dsn) else _kv_pairs(dsn)
    unknown = sorted(set(pairs) - _KEYS)
    if unknown:
        raise ValueError(f"DSN keys the probe does not support: {', '.join(unknown)}")
    for key, var in _ENV.items():
        if key not in pairs and os.environ.get(var):
            pairs[key] = os.environ[var]
    if "," in pairs.get("host", "") + pairs.get("port", ""):
        raise ValueError("several hosts in one DSN are not supported")
    sslmode = pairs.get("sslmode", "prefer")
    if sslmode not in _SSLMODES:
        raise ValueError(f"sslmode {sslmode!r} is not one of {', '.join(_SSLMODES)}")
    user = pairs.get("user") or _os_user()
    fields = {k: v for k, v in pairs.items() if k in Endpoint.__dataclass_fields__ and k != "port" and v}
    fields.update(user=user, sslmode=sslmode)
    fields.setdefault("dbname", user)
    return Endpoint(port=int(pairs.get("port") or 5432), **fields)


def _os_user() -> str:
    """libpq's default user, the OS user's name; a uid without a passwd entry (some containers) has none."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise ValueError("the DSN names no user, and this process's user has no name to default to") from None


def readable(dsn: str) -> str:
    """The DSN as given if the probes can read it: a ValueError names what they cannot, at load
    rather than at every scrape (a config's field validator)."""
    parse_dsn(dsn)
    return dsn
