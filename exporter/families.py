"""Every built-in metric family, declared once.

Dashboards, alert rules, docs/metrics.md and the client library's wire names
all read from here (tests check them against it). Names exclude the namespace
(`apm` by default); the exposition adds it.
"""

from __future__ import annotations

from exporter.model import FamilySpec, MetricType

C, G, H, S = MetricType.COUNTER, MetricType.GAUGE, MetricType.HISTOGRAM, MetricType.SUMMARY

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
# Names follow node_exporter's where one exists, so its alert rules port with a prefix change.
_DEV, _FS = ("device",), ("device", "mountpoint", "fstype")
HOST_CPU_SECONDS = FamilySpec(
    "host_cpu_seconds_total", C, "CPU time spent in each mode, summed over all CPUs.", ("mode",), unit="seconds")
HOST_CPUS = FamilySpec("host_cpus", G, "Logical CPUs online.")
HOST_LOAD1 = FamilySpec("host_load1", G, "Load average over 1 minute.")
HOST_LOAD5 = FamilySpec("host_load5", G, "Load average over 5 minutes.")
HOST_LOAD15 = FamilySpec("host_load15", G, "Load average over 15 minutes.")
HOST_MEMORY_TOTAL = FamilySpec("host_memory_total_bytes", G, "Usable physical memory.", unit="bytes")
HOST_MEMORY_AVAILABLE = FamilySpec(
    "host_memory_available_bytes", G, "Memory available for new work without swapping (MemAvailable).",
    unit="bytes")
HOST_MEMORY_USED = FamilySpec(
    "host_memory_used_bytes", G, "Memory in use: total minus available (as psutil and free(1) count it).",
    unit="bytes")
HOST_MEMORY_FREE = FamilySpec("host_memory_free_bytes", G, "Memory not used for anything (MemFree).", unit="bytes")
HOST_MEMORY_CACHED = FamilySpec(
    "host_memory_cached_bytes", G, "Page cache plus reclaimable slab.", unit="bytes")
HOST_MEMORY_BUFFERS = FamilySpec(
    "host_memory_buffers_bytes", G, "Memory in block device buffers.", unit="bytes")
HOST_SWAP_TOTAL = FamilySpec("host_swap_total_bytes", G, "Swap space configured.", unit="bytes")
HOST_SWAP_USED = FamilySpec("host_swap_used_bytes", G, "Swap space in use.", unit="bytes")
HOST_SWAP_IN = FamilySpec("host_swap_in_bytes_total", C, "Bytes swapped in from disk.", unit="bytes")
HOST_SWAP_OUT = FamilySpec("host_swap_out_bytes_total", C, "Bytes swapped out to disk.", unit="bytes")
HOST_FS_SIZE = FamilySpec("host_filesystem_size_bytes", G, "Filesystem size.", _FS, unit="bytes")
HOST_FS_FREE = FamilySpec(
    "host_filesystem_free_bytes", G, "Free filesystem space, including blocks reserved for root.", _FS,
    unit="bytes")
HOST_FS_AVAIL = FamilySpec(
    "host_filesystem_avail_bytes", G, "Filesystem space available to non-root users.", _FS, unit="bytes")
HOST_FS_USED = FamilySpec(
    "host_filesystem_used_bytes", G, "Filesystem space in use (size minus free).", _FS, unit="bytes")
HOST_FS_FILES = FamilySpec("host_filesystem_files", G, "Inodes on the filesystem.", _FS)
HOST_FS_FILES_FREE = FamilySpec("host_filesystem_files_free", G, "Free inodes on the filesystem.", _FS)
HOST_FS_ERROR = FamilySpec(
    "host_filesystem_device_error", G,
    "1 if the filesystem could not be measured (statfs failed or is still hanging from an earlier scrape).",
    _FS)
HOST_FS_READONLY = FamilySpec(
    "host_filesystem_readonly", G, "1 if the filesystem is mounted read-only (statvfs ST_RDONLY).", _FS)
HOST_DISK_READ_BYTES = FamilySpec(
    "host_disk_read_bytes_total", C, "Bytes read from the block device.", _DEV, unit="bytes")
HOST_DISK_WRITTEN_BYTES = FamilySpec(
    "host_disk_written_bytes_total", C, "Bytes written to the block device.", _DEV, unit="bytes")
HOST_DISK_READS = FamilySpec("host_disk_reads_completed_total", C, "Reads completed by the block device.", _DEV)
HOST_DISK_WRITES = FamilySpec(
    "host_disk_writes_completed_total", C, "Writes completed by the block device.", _DEV)
HOST_DISK_READ_TIME = FamilySpec(
    "host_disk_read_time_seconds_total", C, "Time spent on reads (divide by reads for mean latency).", _DEV,
    unit="seconds")
HOST_DISK_WRITE_TIME = FamilySpec(
    "host_disk_write_time_seconds_total", C, "Time spent on writes (divide by writes for mean latency).", _DEV,
    unit="seconds")
HOST_DISK_IO_TIME = FamilySpec(
    "host_disk_io_time_seconds_total", C, "Time the device had I/O in flight (its utilisation).", _DEV,
    unit="seconds")
HOST_NET_RX_BYTES = FamilySpec(
    "host_network_receive_bytes_total", C, "Bytes received by the interface.", _DEV, unit="bytes")
HOST_NET_TX_BYTES = FamilySpec(
    "host_network_transmit_bytes_total", C, "Bytes sent by the interface.", _DEV, unit="bytes")
HOST_NET_RX_PACKETS = FamilySpec(
    "host_network_receive_packets_total", C, "Packets received by the interface.", _DEV)
HOST_NET_TX_PACKETS = FamilySpec(
    "host_network_transmit_packets_total", C, "Packets sent by the interface.", _DEV)
HOST_NET_RX_ERRORS = FamilySpec(
    "host_network_receive_errors_total", C, "Receive errors on the interface.", _DEV)
HOST_NET_TX_ERRORS = FamilySpec(
    "host_network_transmit_errors_total", C, "Transmit errors on the interface.", _DEV)
HOST_NET_RX_DROPS = FamilySpec(
    "host_network_receive_drops_total", C, "Received packets dropped by the interface.", _DEV)
HOST_NET_TX_DROPS = FamilySpec(
    "host_network_transmit_drops_total", C, "Outgoing packets dropped by the interface.", _DEV)
HOST_NET_UP = FamilySpec(
    "host_network_up", G, "1 if the interface's operational state is up (sysfs operstate; lo reports unknown: 0).",
    _DEV)
HOST_NET_CARRIER = FamilySpec(
    "host_network_carrier", G, "1 if the interface has a link (sysfs carrier; absent while it is down).", _DEV)
HOST_NET_SPEED = FamilySpec(
    "host_network_speed_bytes", G,
    "Link speed in bytes per second (sysfs speed; absent where the driver does not know it).", _DEV)
HOST_UDP_RCVBUF_ERRORS = FamilySpec(
    "host_udp_receive_buffer_errors_total", C,
    "UDP datagrams the host dropped because a socket's receive buffer was full (Udp and Udp6 RcvbufErrors).")
HOST_UDP_IN_ERRORS = FamilySpec(
    "host_udp_in_errors_total", C,
    "UDP datagrams the host could not deliver, receive-buffer overflows included (Udp and Udp6 InErrors).")
HOST_TCP_OUT_SEGMENTS = FamilySpec(
    "host_tcp_out_segments_total", C, "TCP segments sent, retransmissions included (Tcp OutSegs).")
HOST_TCP_RETRANSMITTED_SEGMENTS = FamilySpec(
    "host_tcp_retransmitted_segments_total", C,
    "TCP segments sent again (Tcp RetransSegs); over host_tcp_out_segments_total, the retransmit ratio.")
HOST_TCP_IN_ERRORS = FamilySpec(
    "host_tcp_in_errors_total", C, "TCP segments received in error, bad checksums included (Tcp InErrs).")
HOST_TCP_OUT_RESETS = FamilySpec("host_tcp_out_resets_total", C, "TCP resets sent (Tcp OutRsts).")
HOST_TCP_ESTABLISHED = FamilySpec(
    "host_tcp_established", G, "TCP connections in ESTABLISHED or CLOSE-WAIT now (Tcp CurrEstab).")
HOST_TCP_LISTEN_OVERFLOWS = FamilySpec(
    "host_tcp_listen_overflows_total", C,
    "Connections dropped because a listener's accept queue was full (TcpExt ListenOverflows).")
HOST_TCP_LISTEN_DROPS = FamilySpec(
    "host_tcp_listen_drops_total", C,
    "Connection attempts a listening socket dropped, accept-queue overflows included (TcpExt ListenDrops).")
HOST_TCP_SYNCOOKIES_SENT = FamilySpec(
    "host_tcp_syncookies_sent_total", C,
    "SYN cookies sent because a listener's SYN queue was full: a SYN flood or a too small backlog "
    "(TcpExt SyncookiesSent).")
HOST_SOFTNET_PROCESSED = FamilySpec(
    "host_softnet_processed_total", C, "Packets the kernel took off the per-CPU receive backlogs (softnet_stat).")
HOST_SOFTNET_DROPPED = FamilySpec(
    "host_softnet_dropped_total", C,
    "Received packets dropped because a CPU's backlog was full (softnet_stat; net.core.netdev_max_backlog).")
HOST_SOFTNET_SQUEEZED = FamilySpec(
    "host_softnet_times_squeezed_total", C,
    "Times receive processing ran out of budget with packets left (softnet_stat; net.core.netdev_budget).")
HOST_CONNTRACK_ENTRIES = FamilySpec(
    "host_conntrack_entries", G, "Connections the netfilter connection tracker holds (absent without nf_conntrack).")
HOST_CONNTRACK_LIMIT = FamilySpec(
    "host_conntrack_entries_limit", G,
    "Most connections the tracker holds; beyond it new connections are dropped (nf_conntrack_max).")
HOST_TIMEX_SYNC = FamilySpec(
    "host_timex_sync_status", G, "1 if the kernel considers the clock synchronised by NTP or PTP (adjtimex).")
HOST_TIMEX_OFFSET = FamilySpec(
    "host_timex_offset_seconds", G, "Offset the kernel is still slewing the clock by (adjtimex).", unit="seconds")
HOST_TIMEX_MAXERROR = FamilySpec(
    "host_timex_maxerror_seconds", G,
    "Upper bound of the clock's error; grows while no time daemon updates it, 16 s when unsynchronised.",
    unit="seconds")
HOST_TIMEX_ESTIMATED_ERROR = FamilySpec(
    "host_timex_estimated_error_seconds", G, "The clock's estimated error (adjtimex esterror).", unit="seconds")
HOST_FILEFD_ALLOCATED = FamilySpec(
    "host_filefd_allocated", G, "File descriptors allocated system-wide (first field of /proc/sys/fs/file-nr).")
HOST_FILEFD_MAXIMUM = FamilySpec(
    "host_filefd_maximum", G, "Most file descriptors the kernel allocates (fs.file-max).")
HOST_BOOT_TIME = FamilySpec("host_boot_time_seconds", G, "Unix time the host booted.", unit="seconds")
HOST_CONTEXT_SWITCHES = FamilySpec("host_context_switches_total", C, "Context switches since boot.")
HOST_INTERRUPTS = FamilySpec("host_interrupts_total", C, "Interrupts serviced since boot.")
HOST_FORKS = FamilySpec("host_forks_total", C, "Processes and threads created since boot.")
HOST_PROCS_RUNNING = FamilySpec("host_procs_running", G, "Threads runnable or running now.")
HOST_PROCS_BLOCKED = FamilySpec("host_procs_blocked", G, "Threads blocked waiting for I/O now.")
HOST_PER_CPU_SECONDS = FamilySpec(
    "host_per_cpu_seconds_total", C, "CPU time spent in each mode, per logical CPU (only with per_cpu: true).",
    ("cpu", "mode"), unit="seconds")
# The memory behind "available": what is waiting for the disk, what the kernel holds, what is promised.
HOST_MEMORY_DIRTY = FamilySpec(
    "host_memory_dirty_bytes", G, "Page cache modified and waiting to be written to disk (Dirty).", unit="bytes")
HOST_MEMORY_WRITEBACK = FamilySpec(
    "host_memory_writeback_bytes", G, "Page cache being written to disk now (Writeback).", unit="bytes")
HOST_MEMORY_SLAB_RECLAIMABLE = FamilySpec(
    "host_memory_slab_reclaimable_bytes", G, "Kernel slab the kernel can free under pressure (SReclaimable).",
    unit="bytes")
HOST_MEMORY_SLAB_UNRECLAIMABLE = FamilySpec(
    "host_memory_slab_unreclaimable_bytes", G, "Kernel slab that cannot be freed (SUnreclaim).", unit="bytes")
HOST_MEMORY_SHMEM = FamilySpec(
    "host_memory_shmem_bytes", G, "Shared memory and tmpfs: counted as cached but not reclaimable (Shmem).",
    unit="bytes")
HOST_MEMORY_ANON = FamilySpec(
    "host_memory_anon_bytes", G, "Anonymous memory of processes (AnonPages).", unit="bytes")
HOST_MEMORY_COMMITTED = FamilySpec(
    "host_memory_committed_bytes", G, "Memory promised to processes, used or not (Committed_AS).", unit="bytes")
HOST_MEMORY_COMMIT_LIMIT = FamilySpec(
    "host_memory_commit_limit_bytes", G,
    "Most memory the kernel promises under strict overcommit (CommitLimit).", unit="bytes")
HOST_OOM_KILLS = FamilySpec(
    "host_oom_kills_total", C, "Processes the kernel's OOM killer killed, host-wide (vmstat oom_kill).")
HOST_MAJOR_PAGE_FAULTS = FamilySpec(
    "host_major_page_faults_total", C, "Page faults that had to read from disk, host-wide (vmstat pgmajfault).")
# Pressure stall information: seconds in which some (waiting) or all non-idle tasks (stalled) were delayed.
HOST_PRESSURE_CPU_WAITING = FamilySpec(
    "host_pressure_cpu_waiting_seconds_total", C, "Time at least one runnable task waited for a CPU (PSI cpu some).",
    unit="seconds")
HOST_PRESSURE_MEMORY_WAITING = FamilySpec(
    "host_pressure_memory_waiting_seconds_total", C,
    "Time at least one task was delayed by memory reclaim or swap-in (PSI memory some).", unit="seconds")
HOST_PRESSURE_MEMORY_STALLED = FamilySpec(
    "host_pressure_memory_stalled_seconds_total", C,
    "Time every non-idle task was delayed by memory at once (PSI memory full).", unit="seconds")
HOST_PRESSURE_IO_WAITING = FamilySpec(
    "host_pressure_io_waiting_seconds_total", C, "Time at least one task waited for I/O (PSI io some).",
    unit="seconds")
HOST_PRESSURE_IO_STALLED = FamilySpec(
    "host_pressure_io_stalled_seconds_total", C, "Time every non-idle task waited for I/O at once (PSI io full).",
    unit="seconds")

# --- process groups (collectors/process.py) -----------------------------------
# Counters include processes of the group that have exited since the exporter started,
# so a restarting worker does not make rate() see a reset.
_GROUP = ("group",)
PROCESS_GROUP_CPU = FamilySpec(
    "process_cpu_seconds_total", C, "CPU time used by the group's processes, by mode (user or system).",
    ("group", "mode"), unit="seconds")
PROCESS_GROUP_RSS = FamilySpec(
    "process_resident_memory_bytes", G, "Resident memory of the group's processes, summed.", _GROUP,
    unit="bytes")
PROCESS_GROUP_VMS = FamilySpec(
    "process_virtual_memory_bytes", G, "Virtual memory of the group's processes, summed.", _GROUP, unit="bytes")
PROCESS_GROUP_THREADS = FamilySpec("process_threads", G, "Threads in the group's processes.", _GROUP)
PROCESS_GROUP_FDS = FamilySpec(
    "process_open_fds", G, "Open file descriptors of the group's processes (those the exporter may read).",
    _GROUP)
PROCESS_GROUP_PROCESSES = FamilySpec("process_processes", G, "Processes in the group now.", _GROUP)
PROCESS_GROUP_READ = FamilySpec(
    "process_read_bytes_total", C, "Bytes the group's processes caused to be read from storage.", _GROUP,
    unit="bytes")
PROCESS_GROUP_WRITTEN = FamilySpec(
    "process_written_bytes_total", C, "Bytes the group's processes caused to be written to storage.", _GROUP,
    unit="bytes")
PROCESS_GROUP_OLDEST_START = FamilySpec(
    "process_oldest_start_time_seconds", G, "Unix start time of the group's oldest process.", _GROUP,
    unit="seconds")

PROCESS_GROUP_STATES = FamilySpec(
    "process_states", G,
    "The group's processes by state (running, sleeping, disk_sleep: uninterruptible, zombie, stopped …).",
    ("group", "state"))
PROCESS_GROUP_MAJOR_FAULTS = FamilySpec(
    "process_major_page_faults_total", C, "Page faults of the group's processes that had to read from disk.", _GROUP)
PROCESS_GROUP_CONTEXT_SWITCHES = FamilySpec(
    "process_context_switches_total", C,
    "Context switches of the group's processes: voluntary (waited for something) or involuntary (preempted).",
    ("group", "kind"))
PROCESS_GROUP_SWAP = FamilySpec(
    "process_swap_bytes", G, "Memory of the group's processes swapped out (VmSwap), summed.", _GROUP, unit="bytes")
PROCESS_GROUP_PSS = FamilySpec(
    "process_proportional_memory_bytes", G,
    "Proportional set size of the group's processes, summed: shared pages divided among their sharers.", _GROUP,
    unit="bytes")
PROCESS_GROUP_FD_RATIO = FamilySpec(
    "process_open_fds_limit_ratio", G,
    "The highest ratio, among the group's processes, of open file descriptors to its soft RLIMIT_NOFILE.", _GROUP)

# --- container (collectors/container.py) --------------------------------------
# Names follow cAdvisor's where one exists. Limits are omitted when the cgroup has none.
CONTAINER_MEMORY_USAGE = FamilySpec(
    "container_memory_usage_bytes", G, "Memory charged to the cgroup, page cache included.", unit="bytes")
CONTAINER_MEMORY_WORKING_SET = FamilySpec(
    "container_memory_working_set_bytes", G,
    "Usage minus inactive page cache: what the kernel cannot reclaim easily (what the OOM killer and kubelet watch).",
    unit="bytes")
CONTAINER_MEMORY_RSS = FamilySpec(
    "container_memory_rss_bytes", G, "Anonymous memory (heap, stacks) of the cgroup.", unit="bytes")
CONTAINER_MEMORY_CACHE = FamilySpec(
    "container_memory_cache_bytes", G, "Page cache charged to the cgroup.", unit="bytes")
CONTAINER_MEMORY_LIMIT = FamilySpec(
    "container_memory_limit_bytes", G, "Memory limit of the cgroup (absent when unlimited).", unit="bytes")
CONTAINER_MEMORY_EVENTS = FamilySpec(
    "container_memory_events_total", C,
    "Memory events of the cgroup: low, high, max (limit hit), oom, oom_kill.", ("event",))
CONTAINER_CPU_USAGE = FamilySpec(
    "container_cpu_usage_seconds_total", C, "CPU time used by the cgroup.", unit="seconds")
CONTAINER_CPU_USER = FamilySpec(
    "container_cpu_user_seconds_total", C, "CPU time used by the cgroup in user mode.", unit="seconds")
CONTAINER_CPU_SYSTEM = FamilySpec(
    "container_cpu_system_seconds_total", C, "CPU time used by the cgroup in kernel mode.", unit="seconds")
CONTAINER_CPU_PERIODS = FamilySpec(
    "container_cpu_cfs_periods_total", C, "CFS enforcement periods that elapsed with the cgroup runnable.")
CONTAINER_CPU_THROTTLED_PERIODS = FamilySpec(
    "container_cpu_cfs_throttled_periods_total", C, "CFS periods in which the cgroup was throttled.")
CONTAINER_CPU_THROTTLED_SECONDS = FamilySpec(
    "container_cpu_cfs_throttled_seconds_total", C, "Time the cgroup's threads spent throttled.",
    unit="seconds")
CONTAINER_CPU_LIMIT = FamilySpec(
    "container_cpu_limit_cores", G, "CPU limit of the cgroup in cores: quota / period (absent when unlimited).")
CONTAINER_PIDS = FamilySpec("container_pids", G, "Tasks (processes and threads) in the cgroup.")
CONTAINER_PIDS_LIMIT = FamilySpec(
    "container_pids_limit", G, "Most tasks the cgroup may hold (absent when unlimited).")

# --- probes (collectors/redis.py, memcached.py, pgbouncer.py, postgres.py, sql.py, http.py, rabbitmq.py)
# Probes fill the cache/pool/queue/operation families above; these cover what those
# do not: caches sized in bytes, stream consumer groups, pooler client queues,
# per-statement database time, SQL and HTTP probe results.
CACHE_MEMORY = FamilySpec(
    "cache_memory_bytes", G, "Memory the cache server uses for its data.", ("cache", "level"), unit="bytes")
CACHE_MEMORY_LIMIT = FamilySpec(
    "cache_memory_limit_bytes", G, "Memory the cache server may use before it evicts (0: no limit).",
    ("cache", "level"), unit="bytes")
CACHE_EXPIRATIONS = FamilySpec(
    "cache_expirations_total", C, "Entries removed because their time to live passed.", ("cache", "level"))
CACHE_CLIENTS = FamilySpec(
    "cache_clients", G, "Client connections open to the cache server.", ("cache",))
QUEUE_CONSUMER_LAG = FamilySpec(
    "queue_consumer_lag", G, "Stream entries not yet delivered to the consumer group.", ("queue", "group"))
QUEUE_PENDING = FamilySpec(
    "queue_pending", G, "Stream entries delivered to the consumer group but not acknowledged.", ("queue", "group"))
QUEUE_UNACKNOWLEDGED = FamilySpec(
    "queue_unacknowledged", G, "Messages delivered to a consumer and not yet acknowledged (RabbitMQ).", ("queue",))
QUEUE_CONSUMERS = FamilySpec("queue_consumers", G, "Consumers attached to the queue.", ("queue",))
QUEUE_PUBLISHED = FamilySpec(
    "queue_messages_published_total", C, "Messages published into the queue.", ("queue",))
QUEUE_DELIVERED = FamilySpec(
    "queue_messages_delivered_total", C, "Messages delivered to consumers or fetched by basic.get.", ("queue",))
QUEUE_ACKNOWLEDGED = FamilySpec(
    "queue_messages_acknowledged_total", C, "Messages consumers acknowledged.", ("queue",))
QUEUE_REDELIVERED = FamilySpec(
    "queue_messages_redelivered_total", C, "Messages delivered again after a consumer failed to acknowledge them.",
    ("queue",))
POOL_CLIENTS = FamilySpec(
    "pool_clients", G, "Client connections to the pooler by state (active: paired with a server; waiting).",
    ("pool", "state"))
POOL_MAX_WAIT = FamilySpec(
    "pool_max_wait_seconds", G, "How long the oldest waiting client has waited for a connection.",
    ("pool",), unit="seconds")
POOL_WAIT_TIME = FamilySpec(
    "pool_wait_seconds_total", C, "Time clients spent waiting for a server connection.", ("pool",), unit="seconds")
POOL_QUERIES = FamilySpec(
    "pool_queries_total", C, "Queries the pooler passed to its servers.", ("pool",))
POOL_QUERY_TIME = FamilySpec(
    "pool_query_seconds_total", C, "Time servers spent on queries passed by the pooler.", ("pool",), unit="seconds")
POSTGRES_STATEMENT_CALLS = FamilySpec(
    "postgres_statement_calls_total", C, "Executions of a top statement (pg_stat_statements).",
    ("target", "database", "queryid", "query"))
POSTGRES_STATEMENT_TIME = FamilySpec(
    "postgres_statement_seconds_total", C, "Execution time of a top statement (pg_stat_statements).",
    ("target", "database", "queryid", "query"), unit="seconds")
POSTGRES_STATEMENT_MEAN = FamilySpec(
    "postgres_statement_mean_seconds", G, "Mean execution time of a top statement (pg_stat_statements).",
    ("target", "database", "queryid", "query"), unit="seconds")
SQL_ROWS = FamilySpec(
    "sql_query_rows", G, "Rows the probe query returned on its last successful run.", ("query",))
SQL_ERRORS = FamilySpec(
    "sql_query_errors_total", C, "Runs of the probe query that failed.", ("query",))
SQL_SLOW = FamilySpec(
    "sql_slow_queries_total", C, "Runs of the probe query slower than its slow_threshold.", ("query",))
SQL_FULL_SCAN = FamilySpec(
    "sql_query_full_scan", G, "1 if the query's plan reads the whole table without an index, else 0.",
    ("query", "table"))
HTTP_STATUS = FamilySpec(
    "http_probe_status_code", G, "HTTP status code of the last probe response.", ("target",))
HTTP_SUCCESS = FamilySpec(
    "http_probe_success", G, "1 if the last probe got an expected status code, else 0.", ("target",))
HTTP_CERT_EXPIRY = FamilySpec(
    "http_probe_tls_cert_expiry_timestamp_seconds", G,
    "Unix time at which the first certificate of the chain the server sent expires.", ("target",), unit="seconds")
# phase: resolve, connect, tls, processing, transfer (blackbox_exporter's probe_http_duration_seconds).
HTTP_PHASE = FamilySpec(
    "http_probe_phase_seconds", G, "Time the last probe spent in each phase, summed over its redirects.",
    ("target", "phase"), unit="seconds")
HTTP_REDIRECTS = FamilySpec("http_probe_redirects", G, "Redirects the last probe followed.", ("target",))
HTTP_INFO = FamilySpec(
    "http_probe_info", G, "Always 1: where the last probe's redirects ended and how it was answered.",
    ("target", "final_url", "http_version", "tls_version"))
HTTP_BODY_BYTES = FamilySpec(
    "http_probe_body_bytes", G, "Bytes of the last answer's body (dechunked; the probe asks for no compression).",
    ("target",), unit="bytes")
HTTP_IP_PROTOCOL = FamilySpec(
    "http_probe_ip_protocol", G, "IP version (4 or 6) of the address the last probe connected to.", ("target",))
# reason: status, redirects, body_matches, body_not_matches, body_json (collectors/http.py REASONS).
HTTP_FAILED = FamilySpec(
    "http_probe_failed", G, "1 if the last probe's answer failed this check, else 0.", ("target", "reason"))

# --- Redis server depth (collectors/redis.py) -----------------------------------------
# `target` is the probe target's name, as in apm_up. Commands get their own summary, not
# apm_operation_duration_seconds: INFO commandstats has calls and total time but no
# distribution, and a histogram with only a +Inf bucket would aggregate with the
# application's real buckets into wrong quantiles (docs/probes.md).
_RT = ("target",)
REDIS_INFO = FamilySpec(
    "redis_info", G, "Always 1; labels give the server's version and replication role (primary or replica).",
    ("target", "version", "role"))
REDIS_UPTIME = FamilySpec("redis_uptime_seconds", G, "Seconds since the Redis server started.", _RT, unit="seconds")
REDIS_COMMAND_DURATION = FamilySpec(
    "redis_command_duration_seconds", S,
    "Time the server spent executing each command: calls (_count) and total time (_sum) from INFO "
    "commandstats, quantiles from Redis 7 INFO latencystats, since the last stats reset.",
    ("target", "command"), unit="seconds")
REDIS_COMMAND_ERRORS = FamilySpec(
    "redis_command_errors_total", C,
    "Calls of each command that failed (reason failed: error during execution; rejected: refused before it, "
    "e.g. OOM, wrong arity, ACL).", ("target", "command", "reason"))
REDIS_CONNECTED_REPLICAS = FamilySpec(
    "redis_connected_replicas", G, "Replicas connected to this primary.", _RT)
REDIS_REPLICATION_OFFSET = FamilySpec(
    "redis_replication_offset_bytes", G, "The server's replication offset (master_repl_offset).", _RT,
    unit="bytes")
REDIS_REPLICA_LAG_BYTES = FamilySpec(
    "redis_replica_lag_bytes", G, "Bytes of the replication stream a connected replica has not acknowledged.",
    ("target", "replica"), unit="bytes")
REDIS_REPLICA_ACK_AGE = FamilySpec(
    "redis_replica_ack_age_seconds", G, "Seconds since a connected replica last acknowledged (INFO lag).",
    ("target", "replica"), unit="seconds")
REDIS_PRIMARY_LINK_UP = FamilySpec(
    "redis_primary_link_up", G, "On a replica: 1 if the link to its primary is up, else 0.", _RT)
REDIS_PRIMARY_LAST_IO = FamilySpec(
    "redis_primary_last_io_age_seconds", G, "On a replica with its link up: seconds since it last heard from the primary.",
    _RT, unit="seconds")
REDIS_MEMORY_RSS = FamilySpec(
    "redis_memory_rss_bytes", G, "Resident memory of the Redis process, as the OS sees it.", _RT, unit="bytes")
REDIS_FRAGMENTATION = FamilySpec(
    "redis_memory_fragmentation_ratio", G, "Resident memory divided by the memory Redis allocated for data.", _RT)
REDIS_DB_KEYS = FamilySpec("redis_db_keys", G, "Keys in each database.", ("target", "db"))
REDIS_DB_EXPIRING_KEYS = FamilySpec(
    "redis_db_expiring_keys", G, "Keys with a time to live in each database.", ("target", "db"))
REDIS_BLOCKED_CLIENTS = FamilySpec(
    "redis_blocked_clients", G, "Clients waiting in a blocking command (BLPOP, XREAD BLOCK, WAIT …).", _RT)
REDIS_MAX_CLIENTS = FamilySpec("redis_max_clients", G, "Most client connections the server accepts.", _RT)
REDIS_REJECTED_CONNECTIONS = FamilySpec(
    "redis_rejected_connections_total", C, "Connections refused because maxclients was reached.", _RT)
REDIS_NET_INPUT = FamilySpec(
    "redis_net_input_bytes_total", C, "Bytes the server read from the network.", _RT, unit="bytes")
REDIS_NET_OUTPUT = FamilySpec(
    "redis_net_output_bytes_total", C, "Bytes the server wrote to the network.", _RT, unit="bytes")
REDIS_LAST_SAVE = FamilySpec(
    "redis_rdb_last_save_timestamp_seconds", G, "Unix time of the last successful RDB save.", _RT, unit="seconds")
REDIS_CHANGES_SINCE_SAVE = FamilySpec(
    "redis_rdb_changes_since_last_save", G, "Writes since the last RDB save (lost if the server dies now).", _RT)
REDIS_LAST_BGSAVE_OK = FamilySpec(
    "redis_rdb_last_bgsave_ok", G, "1 if the last background RDB save succeeded, else 0.", _RT)
REDIS_AOF_ENABLED = FamilySpec("redis_aof_enabled", G, "1 if the append-only file is on, else 0.", _RT)
REDIS_AOF_LAST_WRITE_OK = FamilySpec(
    "redis_aof_last_write_ok", G, "1 if the last write to the append-only file succeeded, else 0.", _RT)
REDIS_AOF_LAST_REWRITE_OK = FamilySpec(
    "redis_aof_last_rewrite_ok", G, "1 if the last append-only file rewrite succeeded, else 0.", _RT)
REDIS_KEY_PATTERN_KEYS = FamilySpec(
    "redis_key_pattern_keys", G, "Keys matching a configured pattern, from the last complete SCAN pass.",
    ("target", "pattern"))
REDIS_KEY_SCAN_PASSES = FamilySpec(
    "redis_key_scan_passes_total", C, "Complete SCAN passes over the keyspace for the key-pattern counts.", _RT)

# --- PostgreSQL server depth (collectors/postgres.py) ------------------------------------------
# Per database: the target's name and the database. Buffer hits and reads are the cache
# families (cache=<target>/<database>), sessions the pool families (pool=<target>/<database>).
_PGDB = ("target", "database")
_PGTABLE = ("target", "database", "schema", "table")
POSTGRES_TRANSACTIONS = FamilySpec(
    "postgres_transactions_total", C, "Transactions finished in the database, by outcome (commit or rollback).",
    ("target", "database", "outcome"))
POSTGRES_DEADLOCKS = FamilySpec("postgres_deadlocks_total", C, "Deadlocks detected in the database.", _PGDB)
POSTGRES_TEMP_BYTES = FamilySpec(
    "postgres_temp_bytes_total", C, "Bytes written to temporary files by queries (work_mem too small).", _PGDB,
    unit="bytes")
POSTGRES_TEMP_FILES = FamilySpec("postgres_temp_files_total", C, "Temporary files created by queries.", _PGDB)
POSTGRES_CONFLICTS = FamilySpec(
    "postgres_conflicts_total", C, "Queries cancelled on a replica by conflicts with recovery.", _PGDB)
POSTGRES_DATABASE_SIZE = FamilySpec("postgres_database_size_bytes", G, "Disk space of the database.", _PGDB,
                                    unit="bytes")
POSTGRES_DATABASE_XID_AGE = FamilySpec(
    "postgres_database_frozen_xid_age", G,
    "Transactions since the database's oldest unfrozen ID (wraparound comes at about 2 billion).", _PGDB)
POSTGRES_OLDEST_TRANSACTION = FamilySpec(
    "postgres_oldest_transaction_age_seconds", G, "Age of the oldest open transaction of any client (0: none).",
    ("target",), unit="seconds")
POSTGRES_OLDEST_IDLE_IN_TRANSACTION = FamilySpec(
    "postgres_oldest_idle_in_transaction_seconds", G,
    "How long the longest idle-in-transaction session has been idle (0: none).", ("target",), unit="seconds")
POSTGRES_LOCKS = FamilySpec(
    "postgres_locks", G, "Locks held (granted) or waited for (waiting), by mode.", ("target", "mode", "state"))
POSTGRES_IN_RECOVERY = FamilySpec(
    "postgres_in_recovery", G, "1 on a replica (the server is in recovery), 0 on a primary.", ("target",))
POSTGRES_WAL_RECEIVER_UP = FamilySpec(
    "postgres_wal_receiver_up", G, "On a replica: 1 if its WAL receiver is streaming from the primary, else 0.",
    ("target",))
POSTGRES_REPLAY_LAG_BYTES = FamilySpec(
    "postgres_replay_lag_bytes", G, "On a replica: WAL received but not yet replayed.", ("target",), unit="bytes")
POSTGRES_REPLAY_LAG_SECONDS = FamilySpec(
    "postgres_replay_lag_seconds", G,
    "On a replica: age of the last replayed commit while WAL waits to be replayed (0 when all is replayed).",
    ("target",), unit="seconds")
POSTGRES_REPLICA_LAG_BYTES = FamilySpec(
    "postgres_replica_lag_bytes", G, "On a primary: WAL a replica has not replayed yet (pg_stat_replication).",
    ("target", "replica"), unit="bytes")
POSTGRES_REPLICA_LAG_SECONDS = FamilySpec(
    "postgres_replica_lag_seconds", G, "On a primary: a replica's replay lag as the primary measures it (0: caught up).",
    ("target", "replica"), unit="seconds")
POSTGRES_CHECKPOINTS = FamilySpec(
    "postgres_checkpoints_total", C, "Checkpoints, by kind: timed (checkpoint_timeout) or requested (WAL size, CHECKPOINT).",
    ("target", "kind"))
POSTGRES_CHECKPOINT_TIME = FamilySpec(
    "postgres_checkpoint_seconds_total", C, "Time checkpoints spent writing and syncing files.", ("target", "phase"),
    unit="seconds")
POSTGRES_BUFFERS_WRITTEN = FamilySpec(
    "postgres_buffers_written_total", C, "Shared buffers written, by writer (checkpointer, bgwriter, backend).",
    ("target", "writer"))
POSTGRES_BGWRITER_STOPS = FamilySpec(
    "postgres_bgwriter_maxwritten_clean_total", C,
    "Times the background writer stopped a round for writing too many buffers (bgwriter_lru_maxpages).", ("target",))
POSTGRES_BUFFERS_ALLOCATED = FamilySpec("postgres_buffers_allocated_total", C, "Shared buffers allocated.", ("target",))
POSTGRES_TABLE_SIZE = FamilySpec(
    "postgres_table_size_bytes", G, "Total size of one of the biggest tables (indexes and TOAST included).", _PGTABLE,
    unit="bytes")
POSTGRES_TABLE_LIVE_TUPLES = FamilySpec("postgres_table_live_tuples", G, "Estimated live rows of the table.", _PGTABLE)
POSTGRES_TABLE_DEAD_TUPLES = FamilySpec(
    "postgres_table_dead_tuples", G, "Estimated dead rows of the table, waiting for vacuum.", _PGTABLE)
POSTGRES_TABLE_VACUUMS = FamilySpec(
    "postgres_table_vacuums_total", C, "Vacuums of the table, manual and automatic.", _PGTABLE)
POSTGRES_TABLE_ANALYZES = FamilySpec(
    "postgres_table_analyzes_total", C, "Analyzes of the table, manual and automatic.", _PGTABLE)
POSTGRES_TABLE_VACUUM_AGE = FamilySpec(
    "postgres_table_vacuum_age_seconds", G, "Seconds since the table was last vacuumed (absent: never).", _PGTABLE,
    unit="seconds")
POSTGRES_TABLE_ANALYZE_AGE = FamilySpec(
    "postgres_table_analyze_age_seconds", G, "Seconds since the table was last analyzed (absent: never).", _PGTABLE,
    unit="seconds")
POSTGRES_TABLE_XID_AGE = FamilySpec(
    "postgres_table_frozen_xid_age", G, "Transactions since the table's oldest unfrozen ID.", _PGTABLE)

# --- PgBouncer itself (collectors/pgbouncer.py) ---------------------------------------------------
PGBOUNCER_LIST_ITEMS = FamilySpec(
    "pgbouncer_list_items", G, "Items in each of PgBouncer's internal lists (SHOW LISTS: used_clients, free_servers …).",
    ("target", "list"))
PGBOUNCER_MEMORY = FamilySpec(
    "pgbouncer_memory_bytes", G, "Memory of each of PgBouncer's object caches (SHOW MEM memtotal).",
    ("target", "cache"), unit="bytes")
PGBOUNCER_CLIENT_CONNECTIONS = FamilySpec(
    "pgbouncer_client_connections", G, "Client connections open to PgBouncer (logged in or logging in).",
    ("target",))
PGBOUNCER_MAX_CLIENT_CONNECTIONS = FamilySpec(
    "pgbouncer_max_client_connections", G, "max_client_conn: client connections beyond it are refused.", ("target",))
PGBOUNCER_APPLICATION_CLIENTS = FamilySpec(
    "pgbouncer_application_clients", G, "Client connections per database and application_name (SHOW CLIENTS).",
    ("target", "database", "application"))
PGBOUNCER_SERVER_CONNECTIONS = FamilySpec(
    "pgbouncer_server_connections", G, "Server connections per database, backend address and state (SHOW SERVERS).",
    ("target", "database", "backend", "state"))

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
# --- the exporter's HTTP server (web.py, webconfig.py) ------------------------------
# reason: missing, malformed, unknown_user, wrong_password, overloaded (webconfig.Authenticator.failures).
HTTP_AUTH_FAILURES = FamilySpec(
    "exporter_http_auth_failures_total", C, "Requests refused by basic auth, by reason.", ("reason",))
# --- the exporter's StatsD path (statsd/) ---------------------------------------
STATSD_PACKETS = FamilySpec(
    "exporter_statsd_packets_total", C, "StatsD datagrams (or TCP reads) received, per listener.", ("listener",))
STATSD_BYTES = FamilySpec(
    "exporter_statsd_bytes_total", C, "StatsD bytes received, per listener.", ("listener",), unit="bytes")
STATSD_LINES = FamilySpec(
    "exporter_statsd_lines_total", C, "Non-blank StatsD lines received, per listener.", ("listener",))
STATSD_SAMPLES = FamilySpec(
    "exporter_statsd_samples_total", C,
    "Values from StatsD lines that reached a series, per listener (a multi-value line gives several).",
    ("listener",))
STATSD_PARSE_ERRORS = FamilySpec(
    "exporter_statsd_parse_errors_total", C,
    "StatsD lines rejected, by reason; invalid_sample_rate, malformed_timestamp and invalid_tag lines are kept "
    "with that part set aside.", ("reason",))
STATSD_LINES_IGNORED = FamilySpec(
    "exporter_statsd_lines_ignored_total", C,
    "Well-formed StatsD lines deliberately not stored: DogStatsD events and service checks, rule drops.",
    ("reason",))
STATSD_LINES_UNMAPPED = FamilySpec(
    "exporter_statsd_lines_unmapped_total", C,
    "StatsD lines that matched neither a convention nor a mapping rule (handled by the default rule).")
STATSD_SAMPLES_DROPPED = FamilySpec(
    "exporter_statsd_samples_dropped_total", C,
    "StatsD samples refused by the series store: type or bucket conflicts, series limits.", ("reason",))
STATSD_KERNEL_DROPS = FamilySpec(
    "exporter_statsd_kernel_drops_total", C,
    "UDP datagrams the kernel dropped for a full receive buffer before the listener read them "
    "(the socket's drops in /proc/net/udp; restarts at 0 when the listener is rebound).", ("listener",))
STATSD_TCP_ERRORS = FamilySpec(
    "exporter_statsd_tcp_errors_total", C,
    "TCP StatsD connection problems: idle timeouts, overlong lines, unterminated last lines, refusals.",
    ("reason",))
STATSD_MAPPING_RULES = FamilySpec(
    "exporter_statsd_mapping_rules", G, "StatsD mapping rules loaded from the configuration.")
STATSD_CACHE_ENTRIES = FamilySpec(
    "exporter_statsd_mapping_cache_entries", G, "Distinct StatsD name+tags+type keys in the routing cache.")
# --- the exporter's OTLP receivers (otlp/) --------------------------------------------
OTLP_REQUESTS = FamilySpec(
    "exporter_otlp_requests_total", C, "OTLP export requests received, per transport (http or grpc).",
    ("transport",))
OTLP_REQUESTS_REJECTED = FamilySpec(
    "exporter_otlp_requests_rejected_total", C,
    "OTLP export requests refused whole (nothing in them stored), by transport and reason.",
    ("transport", "reason"))
OTLP_DATA_POINTS = FamilySpec(
    "exporter_otlp_data_points_total", C, "OTLP data points stored, per transport.", ("transport",))
OTLP_DATA_POINTS_REJECTED = FamilySpec(
    "exporter_otlp_data_points_rejected_total", C,
    "OTLP data points not stored (reported back as a partial success), by reason.", ("reason",))
OTLP_STREAMS = FamilySpec(
    "exporter_otlp_streams", G, "OTLP streams (metric, resource, scope, attributes) whose last point is kept.")
SERIES = FamilySpec("exporter_series", G, "Pushed (StatsD) series currently held in the store.")
SERIES_EXPIRED = FamilySpec(
    "exporter_series_expired_total", C, "Pushed series removed after going without updates for their TTL.")


def all_specs() -> list[FamilySpec]:
    """Every spec in this module, for the generated reference and the consistency tests."""
    return [v for v in globals().values() if isinstance(v, FamilySpec)]
