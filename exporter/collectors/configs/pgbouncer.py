"""The PgBouncer probe's target section: its admin console's DSN, refused at load if unreadable."""

from __future__ import annotations

from pydantic import Field, field_validator

from exporter.collectors.pgdsn import readable
from exporter.schema import Target


class Config(Target):
    """A PgBouncer admin console: the DSN's user must be in admin_users or stats_users."""

    dsn: str = Field(default="postgresql://pgbouncer@127.0.0.1:6432/pgbouncer", min_length=1)

    _readable = field_validator("dsn")(readable)
