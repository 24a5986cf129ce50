"""The PostgreSQL probe's target section: its DSN (refused at load if unreadable) and depth."""

from __future__ import annotations

from pydantic import Field, field_validator

from exporter.collectors.pgdsn import readable
from exporter.schema import Target


class Config(Target):
    """A PostgreSQL server; `statements` is how many top statements to export (0: none)."""

    dsn: str = Field(default="postgresql://postgres@127.0.0.1:5432/postgres", min_length=1)

    _readable = field_validator("dsn")(readable)

    statements: int = Field(default=10, ge=0, le=1000)
    # The biggest N tables (total size) of the DSN's database, with vacuum and analyze history.
    tables: int = Field(default=10, ge=0, le=1000)
    # Every database, replication, transactions, locks, checkpoints (the apm_postgres_* families).
    server: bool = True
