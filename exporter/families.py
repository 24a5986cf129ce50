"""Every built-in metric family, declared once.

Dashboards, alert rules, docs/metrics.md and the client library's wire names
all read from here (tests check them against it). Names exclude the namespace
(`apm` by default); the exposition adds it.
"""

from __future__ import annotations

from exporter.model import FamilySpec, MetricType

C, G, H = MetricType.COUNTER, MetricType.GAUGE, MetricType.HISTOGRAM

# Shared bucket boundaries, so every instance's histograms aggregate exactly.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0)

# --- operations -------------------------------------------------------------
OPERATION_DURATION = FamilySpec(
    "operation_duration_seconds", H, "Duration of application operations, by outcome.",
    ("operation", "outcome"), LATENCY_BUCKETS, unit="seconds")

# --- caches -----------------------------------------------------------------
# `level` is "" for single-level caches (Prometheus treats an empty label as absent).
CACHE_REQUESTS = FamilySpec(
    "cache_requests_total", C, "Cache lookups by result (hit or miss).", ("cache", "level", "result"))
CACHE_EVICTIONS = FamilySpec(
    "cache_evictions_total", C, "Entries evicted from the cache to make room.", ("cache", "level"))
CACHE_ENTRIES = FamilySpec(
    "cache_entries", G, "Entries currently held in the cache.", ("cache", "level"))
CACHE_CAPACITY = FamilySpec(
    "cache_capacity_entries", G, "Maximum entries the cache holds before it evicts.", ("cache", "level"))
CACHE_PROMOTIONS = FamilySpec(
    "cache_promotions_total", C, "Entries promoted into this level from a slower one.", ("cache", "level"))

# --- connection pools ---------------------------------------------------------
POOL_CONNECTIONS = FamilySpec(
    "pool_connections", G, "Connections in the pool by state (active or idle).", ("pool", "state"))
POOL_MAX_CONNECTIONS = FamilySpec(
    "pool_max_connections", G, "Most connections the pool may open.", ("pool",))
POOL_PENDING = FamilySpec(
    "pool_pending_requests", G, "Requests waiting for a connection.", ("pool",))
POOL_WAIT_DURATION = FamilySpec(
    "pool_wait_duration_seconds", H, "Time spent waiting for a connection from the pool.",
    ("pool",), LATENCY_BUCKETS, unit="seconds")
POOL_TIMEOUTS = FamilySpec(
    "pool_timeouts_total", C, "Requests that gave up waiting for a connection.", ("pool",))

# --- queues and batches -------------------------------------------------------
QUEUE_DEPTH = FamilySpec("queue_depth", G, "Items waiting in the queue.", ("queue",))
BATCH_SIZE = FamilySpec(
    "batch_size", H, "Items per processed batch.", ("queue",), BATCH_SIZE_BUCKETS)
BATCH_DURATION = FamilySpec(
    "batch_duration_seconds", H, "Time to process one batch.", ("queue",), LATENCY_BUCKETS, unit="seconds")
BATCH_ITEMS = FamilySpec(
    "batch_items_total", C, "Items processed in batches, by outcome.", ("queue", "outcome"))

# --- host (collectors/host.py) ------------------------------------------------
# --- process groups (collectors/process.py) -----------------------------------
# --- container (collectors/container.py) --------------------------------------
# --- probes (collectors/redis.py, memcached.py, pgbouncer.py, postgres.py, sql.py, http.py)

# --- the exporter itself --------------------------------------------------------
BUILD_INFO = FamilySpec(
    "exporter_build_info", G, "Always 1; labels say which build is running.", ("version", "python_version"))
COLLECTOR_DURATION = FamilySpec(
    "exporter_collector_duration_seconds", G, "How long the collector took in the last scrape.",
    ("collector", "target"), unit="seconds")
COLLECTOR_SUCCESS = FamilySpec(
    "exporter_collector_success", G, "1 if the collector succeeded in the last scrape, 0 if it failed or timed out.",
    ("collector", "target"))
UP = FamilySpec(
    "up", G, "1 if the probed target answered in the last scrape, 0 if not.", ("collector", "target"))
CONFIG_LAST_RELOAD_SUCCESSFUL = FamilySpec(
    "exporter_config_last_reload_successful", G, "1 if the last configuration load succeeded.")
CONFIG_LAST_RELOAD_SUCCESS_TIME = FamilySpec(
    "exporter_config_last_reload_success_timestamp_seconds", G,
    "Unix time of the last successful configuration load.", unit="seconds")
CONFIG_RELOADS = FamilySpec(
    "exporter_config_reloads_total", C, "Configuration reloads by outcome.", ("outcome",))
SCRAPES = FamilySpec("exporter_scrapes_total", C, "Scrapes of the metrics endpoint served.")
PROCESS_CPU = FamilySpec(
    "exporter_process_cpu_seconds_total", C, "CPU time used by the exporter process.", ("mode",), unit="seconds")
PROCESS_RSS = FamilySpec(
    "exporter_process_resident_memory_bytes", G, "Resident memory of the exporter process.", unit="bytes")
PROCESS_VMS = FamilySpec(
    "exporter_process_virtual_memory_bytes", G, "Virtual memory of the exporter process.", unit="bytes")
PROCESS_FDS = FamilySpec(
    "exporter_process_open_fds", G, "Open file descriptors of the exporter process.")
PROCESS_START = FamilySpec(
    "exporter_process_start_time_seconds", G, "Unix time the exporter process started.", unit="seconds")
# --- the exporter's StatsD path (statsd/) ---------------------------------------


def all_specs() -> list[FamilySpec]:
    """Every spec in this module, for the generated reference and the consistency tests."""
    return [v for v in globals().values() if isinstance(v, FamilySpec)]
