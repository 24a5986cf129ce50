"""The Redis probe's target section: its queues, key patterns and SCAN budget."""

from __future__ import annotations

from enum import Enum

from pydantic import Field, model_validator

from exporter.schema import Duration, Section, Target

# kombu's default `priority_steps` (one list per step, see collectors/redis.py).
_CELERY_PRIORITY_STEPS = [0, 3, 6, 9]


class Layout(str, Enum):
    KEY = "key"
    CELERY = "celery"
    RQ = "rq"


class Queue(Section):
    """One queue to measure; `name` is the `queue` label unless `label` says otherwise."""

    name: str = Field(min_length=1)
    layout: Layout = Layout.KEY
    # For layout `key`: the key to read (default: the name).
    key: str | None = None
    label: str | None = None
    # For layout `celery`: kombu's `priority_steps` transport option, if the app changed it.
    priority_steps: list[int] = Field(default_factory=lambda: list(_CELERY_PRIORITY_STEPS), min_length=1)

    @model_validator(mode="after")
    def _key_only_for_key_layout(self) -> Queue:
        if self.key is not None and self.layout is not Layout.KEY:
            raise ValueError(f"`key` applies to layout 'key' only; layout {self.layout.value!r} derives it")
        return self


class KeyPattern(Section):
    """Keys to count: a Redis glob (`session:*`, `user:[0-9]*`); `label` is the `pattern` label."""

    pattern: str = Field(min_length=1)
    label: str | None = None


class ScanBudget(Section):
    """How much SCAN work one scrape may do for the key-pattern counts."""

    keys: int = Field(default=10_000, ge=1, le=10_000_000)
    time: Duration = 0.05


class Config(Target):
    """A Redis server: `url` is redis://[user:password@]host:port/db (rediss:// for TLS)."""

    url: str = Field(default="redis://127.0.0.1:6379/0", pattern=r"^(redis|rediss|unix)://")
    queues: list[Queue] = []
    # Cache stats (hits, misses, entries, expirations) can be switched off for a Redis used
    # only as a broker; memory, its limit, evictions and clients stay while `server` is on.
    cache: bool = True
    # The apm_redis_* families: commands, latency, replication, memory, keyspace, persistence.
    server: bool = True
    key_patterns: list[KeyPattern] = []
    scan_budget: ScanBudget = ScanBudget()
