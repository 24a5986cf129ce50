"""The StatsD wire names of the built-in conventions (docs/statsd-conventions.md).

Hard-coded on purpose: the client imports nothing of the daemon, so it cannot read
exporter/families.py. tests/client/test_wire_names.py checks every name here against
the conventions doc and the families it maps to, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Final

OPERATION: Final = "apm.operation"  # ms   {operation, outcome}

CACHE_HIT: Final = "apm.cache.hit"  # c    {cache, level}
CACHE_MISS: Final = "apm.cache.miss"  # c    {cache, level}
CACHE_EVICTION: Final = "apm.cache.eviction"  # c    {cache, level}
CACHE_PROMOTION: Final = "apm.cache.promotion"  # c    {cache, level}
CACHE_ENTRIES: Final = "apm.cache.entries"  # g    {cache, level}
CACHE_CAPACITY: Final = "apm.cache.capacity"  # g    {cache, level}

POOL_ACTIVE: Final = "apm.pool.active"  # g    {pool}
POOL_IDLE: Final = "apm.pool.idle"  # g    {pool}
POOL_MAX: Final = "apm.pool.max"  # g    {pool}
POOL_PENDING: Final = "apm.pool.pending"  # g    {pool}
POOL_WAIT: Final = "apm.pool.wait"  # ms   {pool}
POOL_TIMEOUT: Final = "apm.pool.timeout"  # c    {pool}

QUEUE_DEPTH: Final = "apm.queue.depth"  # g    {queue}
BATCH_SIZE: Final = "apm.batch.size"  # h    {queue}
BATCH_DURATION: Final = "apm.batch.duration"  # ms   {queue}
BATCH_ITEMS: Final = "apm.batch.items"  # c    {queue, outcome}

# wire name -> (StatsD type, family name without namespace, fixed labels it sets)
CONVENTIONS: Final[dict[str, tuple[str, str, dict[str, str]]]] = {
    OPERATION: ("ms", "operation_duration_seconds", {}),
    CACHE_HIT: ("c", "cache_requests_total", {"result": "hit"}),
    CACHE_MISS: ("c", "cache_requests_total", {"result": "miss"}),
    CACHE_EVICTION: ("c", "cache_evictions_total", {}),
    CACHE_PROMOTION: ("c", "cache_promotions_total", {}),
    CACHE_ENTRIES: ("g", "cache_entries", {}),
    CACHE_CAPACITY: ("g", "cache_capacity_entries", {}),
    POOL_ACTIVE: ("g", "pool_connections", {"state": "active"}),
    POOL_IDLE: ("g", "pool_connections", {"state": "idle"}),
    POOL_MAX: ("g", "pool_max_connections", {}),
    POOL_PENDING: ("g", "pool_pending_requests", {}),
    POOL_WAIT: ("ms", "pool_wait_duration_seconds", {}),
    POOL_TIMEOUT: ("c", "pool_timeouts_total", {}),
    QUEUE_DEPTH: ("g", "queue_depth", {}),
    BATCH_SIZE: ("h", "batch_size", {}),
    BATCH_DURATION: ("ms", "batch_duration_seconds", {}),
    BATCH_ITEMS: ("c", "batch_items_total", {}),
}
