"""The StatsD wire names of the built-in conventions (docs/statsd-conventions.md), defined once.

The client (exporter.client) sends these names and tags; the daemon's mapper
(statsd/mapper.py) reads them into the built-in families. Stdlib only, and no
import of the daemon: the client imports this module into applications.
"""

from __future__ import annotations

from typing import Final, NamedTuple

OPERATION: Final = "apm.operation"
CACHE_HIT: Final = "apm.cache.hit"
CACHE_MISS: Final = "apm.cache.miss"
CACHE_EVICTION: Final = "apm.cache.eviction"
CACHE_PROMOTION: Final = "apm.cache.promotion"
CACHE_ENTRIES: Final = "apm.cache.entries"
CACHE_CAPACITY: Final = "apm.cache.capacity"
POOL_ACTIVE: Final = "apm.pool.active"
POOL_IDLE: Final = "apm.pool.idle"
POOL_MAX: Final = "apm.pool.max"
POOL_PENDING: Final = "apm.pool.pending"
POOL_WAIT: Final = "apm.pool.wait"
POOL_TIMEOUT: Final = "apm.pool.timeout"
QUEUE_DEPTH: Final = "apm.queue.depth"
BATCH_SIZE: Final = "apm.batch.size"
BATCH_DURATION: Final = "apm.batch.duration"
BATCH_ITEMS: Final = "apm.batch.items"

# Tag keys; each becomes the label of the same name.
TAG_OPERATION: Final = "operation"
TAG_OUTCOME: Final = "outcome"
TAG_CACHE: Final = "cache"
TAG_LEVEL: Final = "level"
TAG_POOL: Final = "pool"
TAG_QUEUE: Final = "queue"
# A gauge line tagged with this key carries one process instance's absolute value (its sign
# included): the daemon folds the tag away and exports the sum over the instances it has heard
# from within statsd.instance_expiry (docs/statsd-conventions.md, "Gauges from many processes").
TAG_INSTANCE: Final = "apm_instance"
# Tags read as `outcome` where it is absent (many clients already tag that way).
OUTCOME_ALIASES: Final = ("status",)

OK: Final = "ok"
ERROR: Final = "error"
CANCELLED: Final = "cancelled"


class Convention(NamedTuple):
    """What one wire name means: the StatsD type the client sends (the mapper takes any of the
    same class: counter, gauge, or ms/h/d for observations), the family it feeds (name
    without the namespace), the tags it reads (with the default for a missing one, None when
    it is required) and the labels the name itself fixes."""

    type: str
    family: str
    tags: dict[str, str | None]
    fixed: dict[str, str] = {}  # noqa: RUF012 - read only


_CACHE_TAGS: dict[str, str | None] = {TAG_CACHE: None, TAG_LEVEL: ""}
_POOL_TAGS: dict[str, str | None] = {TAG_POOL: None}
_QUEUE_TAGS: dict[str, str | None] = {TAG_QUEUE: None}

CONVENTIONS: Final[dict[str, Convention]] = {
    OPERATION: Convention("ms", "operation_duration_seconds", {TAG_OPERATION: None, TAG_OUTCOME: OK}),
    # caches
    CACHE_HIT: Convention("c", "cache_requests_total", _CACHE_TAGS, {"result": "hit"}),
    CACHE_MISS: Convention("c", "cache_requests_total", _CACHE_TAGS, {"result": "miss"}),
    CACHE_EVICTION: Convention("c", "cache_evictions_total", _CACHE_TAGS),
    CACHE_PROMOTION: Convention("c", "cache_promotions_total", _CACHE_TAGS),
    CACHE_ENTRIES: Convention("g", "cache_entries", _CACHE_TAGS),
    CACHE_CAPACITY: Convention("g", "cache_capacity_entries", _CACHE_TAGS),
    # queues and batches
    QUEUE_DEPTH: Convention("g", "queue_depth", _QUEUE_TAGS),
    BATCH_ITEMS: Convention("c", "batch_items_total", {TAG_QUEUE: None, TAG_OUTCOME: OK}),
    BATCH_SIZE: Convention("h", "batch_size", _QUEUE_TAGS),
    BATCH_DURATION: Convention("ms", "batch_duration_seconds", _QUEUE_TAGS),
    # connection pools
    POOL_MAX: Convention("g", "pool_max_connections", _POOL_TAGS),
    POOL_PENDING: Convention("g", "pool_pending_requests", _POOL_TAGS),
    POOL_ACTIVE: Convention("g", "pool_connections", _POOL_TAGS, {"state": "active"}),
    POOL_IDLE: Convention("g", "pool_connections", _POOL_TAGS, {"state": "idle"}),
    POOL_WAIT: Convention("ms", "pool_wait_duration_seconds", _POOL_TAGS),
    POOL_TIMEOUT: Convention("c", "pool_timeouts_total", _POOL_TAGS),
}
