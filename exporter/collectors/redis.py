"""Redis: cache statistics and server depth from INFO, the depth of queues kept in keys,
and bounded key-pattern counts.

INFO gives hits, misses, evictions, expirations, keys, memory and clients into the
cache families (the cache label is the target's name), and the server's own
figures into apm_redis_*: per-command calls, time, errors and (Redis 7) latency
percentiles, replication on both sides, memory detail, keyspace per database,
blocked and rejected clients, persistence. Queues are read by layout: a plain
key of any type (list LLEN, stream XLEN plus consumer-group lag, sorted set
ZCARD, set SCARD), a Celery queue (a list named after the queue, plus its
priority lists) or an RQ queue (the list `rq:queue:<name>`).

Key patterns are counted by SCAN (never KEYS, which blocks the server), within
a key and time budget per scrape: a pass over a large keyspace spans scrapes,
resuming at its cursor, and the counts published are those of the last
complete pass.

Every key the probe reads is a keyspace hit (the key exists) or miss (it does
not) in Redis's own counters. The probe counts its own lookups and subtracts
them, so apm_cache_requests_total shows the applications' hits and misses only,
exactly (tests check it). The tally restarts with the server (INFO run_id) or a
CONFIG RESETSTAT (counters below the tally). SCAN is no lookup.

The probe speaks RESP itself (collectors/resp.py): redis-py's import alone cost
the daemon 8.8 MiB of its 40 MiB budget.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from exporter import families
from exporter.collectors import BaseProbe, ProbeError
from exporter.collectors.configs.redis import (
    Config,
    KeyPattern,
    Layout,
    Queue,
    ScanBudget,
)
from exporter.collectors.resp import (
    Connection,
    Endpoint,
    parse_fields,
    parse_info,
    parse_url,
)
from exporter.model import Family, SummaryValue
from exporter.redact import dsn_secrets

# Celery's Redis transport (kombu) keeps one list per priority step: the queue's own name
# for step 0, `<queue>\x06\x16<step>` for the others; kombu's default steps are 0, 3, 6, 9.
_CELERY_PRIORITY_SEP = "\x06\x16"
# Keys asked for per SCAN call: large enough to keep round trips few, small enough that
# one call stays well inside the time budget on a busy server.
_SCAN_COUNT = 1000


class RedisCollector(BaseProbe):
    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.secrets = dsn_secrets(config.url)
        self._endpoint: Endpoint | None = None
        self._conn: Connection | None = None
        self._own = _Lookups()
        self._scan = _PatternScan(config.key_patterns, config.scan_budget, clock)

    def describe(self) -> str:
        return f"redis {self.config.url}"

    def address(self) -> tuple[str, int] | None:
        try:
            endpoint = self._endpoint or parse_url(self.config.url)
        except ProbeError:
            return None
        return None if endpoint.path else (endpoint.host, endpoint.port)

    async def collect(self) -> list[Family]:
        if self._conn is None:
            if self._endpoint is None:
                self._endpoint = parse_url(self.config.url)
            self._conn = await Connection.open(self._endpoint, client_name="apm-exporter")
        conn = self._conn
        target = self.config.name
        out: list[Family] = []
        if self.config.cache or self.config.server:
            info = parse_info(await conn.call("INFO", "all" if self.config.server else "default"))
            self._own.sync(info)
            out += _memory_families(target, info)
            if self.config.cache:
                out += _cache_families(target, info, self._own)
            if self.config.server:
                out += server_families(target, info)
            self._scan.sync(info.get("run_id"))
        if self.config.queues:
            depths: list[tuple[tuple[str], float]] = []
            lags: list[tuple[tuple[str, str], float]] = []
            pending: list[tuple[tuple[str, str], float]] = []
            for queue in self.config.queues:
                label = queue.label or queue.name
                depth, groups = await _queue_depth(conn, queue, self._own)
                depths.append(((label,), depth))
                for group, lag, pend in groups:
                    lags.append(((label, group), lag))
                    pending.append(((label, group), pend))
            out.append(families.QUEUE_DEPTH.family(depths))
            if lags:
                out.append(families.QUEUE_CONSUMER_LAG.family(lags))
                out.append(families.QUEUE_PENDING.family(pending))
        if self.config.key_patterns:
            await self._scan.advance(conn)
            out += self._scan.families(target)
        return out

    async def reset(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


class _Lookups:
    """The probe's own keyspace hits and misses on one Redis server run, to subtract from INFO."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self._run_id: str | None = None

    def key(self, exists: bool) -> None:
        if exists:
            self.hits += 1
        else:
            self.misses += 1

    def sync(self, info: dict[str, str]) -> None:
        """Forget the tally when the counters it refers to are gone (restart, CONFIG RESETSTAT)."""
        run_id = info.get("run_id")
        if (run_id != self._run_id or _int(info, "keyspace_hits") < self.hits
                or _int(info, "keyspace_misses") < self.misses):
            self.hits = self.misses = 0
        self._run_id = run_id


def _int(info: dict[str, str], key: str) -> int:
    try:
        return int(info.get(key, 0))
    except ValueError:
        raise ProbeError(f"INFO field {key} is not a number: {info[key][:40]!r}") from None


def _num(info: dict[str, str], key: str) -> float:
    try:
        return float(info.get(key, 0))
    except ValueError:
        raise ProbeError(f"INFO field {key} is not a number: {info[key][:40]!r}") from None


def _databases(info: dict[str, str]) -> dict[str, dict[str, str]]:
    """The keyspace section: {"0": {"keys": …, "expires": …}} for each `dbN` line."""
    return {k[2:]: parse_fields(v) for k, v in info.items() if k.startswith("db") and k[2:].isdigit()}


def _memory_families(cache: str, info: dict[str, str]) -> list[Family]:
    """What matters for a cache and a broker alike: memory against its limit, evictions, clients."""
    level = ""
    return [
        families.CACHE_EVICTIONS.one(_num(info, "evicted_keys"), cache, level),
        families.CACHE_MEMORY.one(_num(info, "used_memory"), cache, level),
        families.CACHE_MEMORY_LIMIT.one(_num(info, "maxmemory"), cache, level),
        families.CACHE_CLIENTS.one(_num(info, "connected_clients"), cache),
    ]


def _cache_families(cache: str, info: dict[str, str], own: _Lookups) -> list[Family]:
    keys = sum(float(db.get("keys", 0)) for db in _databases(info).values())
    level = ""
    return [
        families.CACHE_REQUESTS.family([
            ((cache, level, "hit"), float(max(0, _int(info, "keyspace_hits") - own.hits))),
            ((cache, level, "miss"), float(max(0, _int(info, "keyspace_misses") - own.misses))),
        ]),
        families.CACHE_EXPIRATIONS.one(_num(info, "expired_keys"), cache, level),
        families.CACHE_ENTRIES.one(keys, cache, level),
    ]


def _quantile(name: str) -> float:
    """latencystats names (p50, p99, p99.9) as summary quantiles (0.5, 0.99, 0.999)."""
    return round(float(name[1:]) / 100, 6)


def server_families(target: str, info: dict[str, str]) -> list[Family]:
    """INFO all → apm_redis_*; fields a server version lacks give no sample rather than a zero."""
    t = (target,)
    stats: dict[str, dict[str, str]] = {}
    quantiles: dict[str, list[tuple[float, float]]] = {}
    for key, value in info.items():
        if key.startswith("cmdstat_"):
            stats[key[8:]] = parse_fields(value)
        elif key.startswith("latency_percentiles_usec_"):
            quantiles[key[25:]] = [(_quantile(name), float(usec) / 1e6)
                                   for name, usec in parse_fields(value).items()]
    durations, errors = [], []
    for command, fields in stats.items():
        durations.append(((target, command), SummaryValue(
            quantiles.get(command, []), float(fields.get("calls", 0)), float(fields.get("usec", 0)) / 1e6)))
        for reason in ("failed", "rejected"):  # Redis 6.2+
            if f"{reason}_calls" in fields:
                errors.append(((target, command, reason), float(fields[f"{reason}_calls"])))
    role = "replica" if info.get("role") == "slave" else "primary"
    out = [
        families.REDIS_INFO.one(1.0, target, info.get("redis_version", ""), role),
        families.REDIS_UPTIME.one(_num(info, "uptime_in_seconds"), target),
        families.REDIS_COMMAND_DURATION.family(durations),
        families.REDIS_COMMAND_ERRORS.family(errors),
        families.REDIS_CONNECTED_REPLICAS.one(_num(info, "connected_slaves"), target),
        families.REDIS_REPLICATION_OFFSET.one(_num(info, "master_repl_offset"), target),
    ]
    offset = _num(info, "master_repl_offset")
    lag_bytes, ack_age = [], []
    for key, value in info.items():
        if re.fullmatch(r"slave\d+", key):
            replica = parse_fields(value)
            name = f"{replica.get('ip', '')}:{replica.get('port', '')}"
            lag_bytes.append(((target, name), max(0.0, offset - float(replica.get("offset", 0)))))
            ack_age.append(((target, name), float(replica.get("lag", 0))))
    out += [families.REDIS_REPLICA_LAG_BYTES.family(lag_bytes), families.REDIS_REPLICA_ACK_AGE.family(ack_age)]
    if role == "replica":
        up = info.get("master_link_status") == "up"
        out.append(families.REDIS_PRIMARY_LINK_UP.one(1.0 if up else 0.0, *t))
        if up and "master_last_io_seconds_ago" in info:
            out.append(families.REDIS_PRIMARY_LAST_IO.one(_num(info, "master_last_io_seconds_ago"), *t))
    dbs = _databases(info)
    out += [
        families.REDIS_DB_KEYS.family(((target, db), float(f.get("keys", 0))) for db, f in dbs.items()),
        families.REDIS_DB_EXPIRING_KEYS.family(((target, db), float(f.get("expires", 0))) for db, f in dbs.items()),
    ]
    out += [spec.one(_num(info, field), *t) for spec, field in _GAUGES if field in info]
    out += [spec.one(_ok(info, field), *t) for spec, field in _STATUSES if field in info]
    return out


# INFO fields exported as they are, and `ok`/`err` statuses exported as 1/0; a field the
# server's version lacks (maxclients before Redis 7) gives no sample rather than a zero.
_GAUGES = [
    (families.REDIS_MEMORY_RSS, "used_memory_rss"),
    (families.REDIS_FRAGMENTATION, "mem_fragmentation_ratio"),
    (families.REDIS_BLOCKED_CLIENTS, "blocked_clients"),
    (families.REDIS_MAX_CLIENTS, "maxclients"),
    (families.REDIS_REJECTED_CONNECTIONS, "rejected_connections"),
    (families.REDIS_NET_INPUT, "total_net_input_bytes"),
    (families.REDIS_NET_OUTPUT, "total_net_output_bytes"),
    (families.REDIS_LAST_SAVE, "rdb_last_save_time"),
    (families.REDIS_CHANGES_SINCE_SAVE, "rdb_changes_since_last_save"),
    (families.REDIS_AOF_ENABLED, "aof_enabled"),
]
_STATUSES = [
    (families.REDIS_LAST_BGSAVE_OK, "rdb_last_bgsave_status"),
    (families.REDIS_AOF_LAST_WRITE_OK, "aof_last_write_status"),
    (families.REDIS_AOF_LAST_REWRITE_OK, "aof_last_bgrewrite_status"),
]


def _ok(info: dict[str, str], key: str) -> float:
    return 1.0 if info.get(key, "ok") == "ok" else 0.0


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A Redis glob (stringmatchlen: `*`, `?`, `[abc]`, `[^a-z]`, `\\` escapes) as a regex."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            i += 1
            negate = pattern[i:i + 1] == "^"
            i += negate
            members = []
            while i < n and pattern[i] != "]":  # Redis reads an unclosed class to the pattern's end
                if pattern[i] == "\\" and i + 1 < n:
                    i += 1
                    members.append(re.escape(pattern[i]))
                elif pattern[i] == "-" and members and i + 1 < n and pattern[i + 1] != "]":
                    members.append("-")
                else:
                    members.append(re.escape(pattern[i]))
                i += 1
            if members:
                out.append(f"[{'^' if negate else ''}{''.join(members)}]")
            else:  # `[]` matches nothing, `[^]` any character
                out.append("." if negate else "(?!)")
            i += 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


class _PatternScan:
    """One SCAN pass at a time over the keyspace, matching every pattern, within a budget per scrape.

    SCAN guarantees every key present for the whole pass is returned at least once
    (a rehash may return some twice, so a count is exact on a keyspace at rest and
    may over-count by a few while the table resizes). The cursor is kept across
    scrapes and connections; a server restart (a new run_id) starts the pass over.
    """

    def __init__(self, patterns: list[KeyPattern], budget: ScanBudget, clock: Callable[[], float]) -> None:
        self._patterns = [(p.label or p.pattern, glob_regex(p.pattern)) for p in patterns]
        self._budget = budget
        self._clock = clock
        self._run_id: str | None = None
        self._cursor = "0"
        self._counting = [0] * len(patterns)
        self.published: list[int] | None = None
        self.passes = 0

    def sync(self, run_id: str | None) -> None:
        if run_id != self._run_id:
            self._cursor, self._counting = "0", [0] * len(self._patterns)
        self._run_id = run_id

    async def advance(self, conn: Connection) -> None:
        """SCAN on from the cursor until the pass ends or the scrape's key or time budget is spent."""
        start, seen = self._clock(), 0
        while seen < self._budget.keys and self._clock() - start < self._budget.time:
            count = min(_SCAN_COUNT, self._budget.keys - seen)
            reply = await conn.call("SCAN", self._cursor, "COUNT", count)
            if not (isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], list)):
                raise ProbeError(f"unexpected SCAN reply {str(reply)[:80]!r}")
            self._cursor, keys = str(reply[0]), reply[1]
            seen += len(keys)
            for i, (_, regex) in enumerate(self._patterns):
                self._counting[i] += sum(1 for key in keys if regex.fullmatch(key))
            if self._cursor == "0":
                self.published, self._counting = self._counting, [0] * len(self._patterns)
                self.passes += 1
                return

    def families(self, target: str) -> list[Family]:
        out = [families.REDIS_KEY_SCAN_PASSES.one(float(self.passes), target)]
        if self.published is not None:
            out.append(families.REDIS_KEY_PATTERN_KEYS.family(
                ((target, label), float(n)) for (label, _), n in zip(self._patterns, self.published)))
        return out


async def _queue_depth(conn: Connection, queue: Queue, own: _Lookups) -> tuple[float, list[tuple[str, float, float]]]:
    """Items waiting, and (group, lag, pending) per consumer group when the key is a stream.

    Each key read is tallied in `own` as Redis counts it: a hit if the key exists.
    Lists, sets and sorted sets cannot exist empty, so a length of 0 means no key.
    """
    if queue.layout is Layout.CELERY:
        keys = [queue.name if step == 0 else f"{queue.name}{_CELERY_PRIORITY_SEP}{step}"
                for step in queue.priority_steps]
        lengths = [int(n) for n in await conn.pipeline([("LLEN", key) for key in keys])]
        for n in lengths:
            own.key(n > 0)
        return float(sum(lengths)), []
    if queue.layout is Layout.RQ:
        n = int(await conn.call("LLEN", f"rq:queue:{queue.name}"))
        own.key(n > 0)
        return float(n), []
    key = queue.key or queue.name
    kind = await conn.call("TYPE", key)
    own.key(kind != "none")
    if kind == "none":
        return 0.0, []  # an empty queue: Redis deletes lists that drain
    if kind in ("list", "zset", "set"):
        n = int(await conn.call({"list": "LLEN", "zset": "ZCARD", "set": "SCARD"}[kind], key))
        own.key(n > 0)
        return float(n), []
    if kind == "stream":
        length = float(await conn.call("XLEN", key))
        own.key(True)
        groups = []
        for reply in await conn.call("XINFO", "GROUPS", key):
            group = dict(zip(reply[::2], reply[1::2]))
            pend = float(group.get("pending") or 0)
            # `lag` (Redis 7+) is nil when Redis cannot tell (entries deleted or trimmed);
            # pending is then the best lower bound we have.
            lag = group.get("lag")
            groups.append((str(group["name"]), pend if lag is None else float(lag), pend))
        own.key(True)
        return length, groups
    raise ProbeError(f"queue {queue.name!r}: key {key!r} is a {kind}, not a list, stream, set or sorted set")
