"""Redis: cache statistics from INFO and the depth of queues kept in keys.

INFO gives hits, misses, evictions, expirations, keys, memory and clients; the
cache label is the target's name. Queues are read by layout: a plain key of
any type (list LLEN, stream XLEN plus consumer-group lag, sorted set ZCARD,
set SCARD), a Celery queue (a list named after the queue, plus its priority
lists) or an RQ queue (the list `rq:queue:<name>`).

Every key the probe reads is a keyspace hit (the key exists) or miss (it does
not) in Redis's own counters. The probe counts its own lookups and subtracts
them, so apm_cache_requests_total shows the applications' hits and misses only,
exactly (tests check it). The tally restarts with the server (INFO run_id) or a
CONFIG RESETSTAT (counters below the tally).
"""

from __future__ import annotations

from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from exporter import families
from exporter.collectors import BaseProbe, ProbeError
from exporter.model import Family
from exporter.redact import dsn_secrets
from exporter.schema import Section, Target

# Celery's Redis transport (kombu) keeps one list per priority step: the queue's own name
# for step 0, `<queue>\x06\x16<step>` for the others; kombu's default steps are 0, 3, 6, 9.
_CELERY_PRIORITY_SEP = "\x06\x16"
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


class Config(Target):
    """A Redis server: `url` is redis://[user:password@]host:port/db (rediss:// for TLS)."""

    url: str = Field(default="redis://127.0.0.1:6379/0", pattern=r"^(redis|rediss|unix)://")
    queues: list[Queue] = []
    # Cache stats (INFO) can be switched off for a Redis used only as a broker.
    cache: bool = True


class RedisCollector(BaseProbe):
    def __init__(self, config: Config) -> None:
        self.config = config
        self.secrets = dsn_secrets(config.url)
        self._client: Any = None
        self._own = _Lookups()

    def describe(self) -> str:
        return f"redis {self.config.url}"

    def address(self) -> tuple[str, int] | None:
        try:
            parts = urlsplit(self.config.url)
            port = parts.port or 6379
        except ValueError:
            return None
        return (parts.hostname, port) if parts.scheme != "unix" and parts.hostname else None

    def _connect(self) -> Any:
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # No client-side retries: one attempt per scrape, the job's backoff between failures.
        return redis.asyncio.Redis.from_url(
            self.config.url, socket_timeout=self.config.timeout, socket_connect_timeout=self.config.timeout,
            retry=Retry(NoBackoff(), 0), decode_responses=True, client_name="apm-exporter",
            max_connections=2)

    async def collect(self) -> list[Family]:
        if self._client is None:
            self._client = self._connect()
        client = self._client
        out: list[Family] = []
        if self.config.cache:
            info = await client.info()
            self._own.sync(info)
            out += _cache_families(self.config.name, info, self._own)
        if self.config.queues:
            depths: list[tuple[tuple[str], float]] = []
            lags: list[tuple[tuple[str, str], float]] = []
            pending: list[tuple[tuple[str, str], float]] = []
            for queue in self.config.queues:
                label = queue.label or queue.name
                depth, groups = await _queue_depth(client, queue, self._own)
                depths.append(((label,), depth))
                for group, lag, pend in groups:
                    lags.append(((label, group), lag))
                    pending.append(((label, group), pend))
            out.append(families.QUEUE_DEPTH.family(depths))
            if lags:
                out.append(families.QUEUE_CONSUMER_LAG.family(lags))
                out.append(families.QUEUE_PENDING.family(pending))
        return out

    async def reset(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except Exception:  # closing a broken connection may fail; it is gone either way
                pass


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

    def sync(self, info: dict[str, Any]) -> None:
        """Forget the tally when the counters it refers to are gone (restart, CONFIG RESETSTAT)."""
        run_id = info.get("run_id")
        if (run_id != self._run_id or int(info.get("keyspace_hits", 0)) < self.hits
                or int(info.get("keyspace_misses", 0)) < self.misses):
            self.hits = self.misses = 0
        self._run_id = run_id


def _cache_families(cache: str, info: dict[str, Any], own: _Lookups) -> list[Family]:
    keys = sum(float(v.get("keys", 0)) for k, v in info.items() if k.startswith("db") and isinstance(v, dict))
    level = ""
    return [
        families.CACHE_REQUESTS.family([
            ((cache, level, "hit"), float(max(0, int(info.get("keyspace_hits", 0)) - own.hits))),
            ((cache, level, "miss"), float(max(0, int(info.get("keyspace_misses", 0)) - own.misses))),
        ]),
        families.CACHE_EVICTIONS.one(float(info.get("evicted_keys", 0)), cache, level),
        families.CACHE_EXPIRATIONS.one(float(info.get("expired_keys", 0)), cache, level),
        families.CACHE_ENTRIES.one(keys, cache, level),
        families.CACHE_MEMORY.one(float(info.get("used_memory", 0)), cache, level),
        families.CACHE_MEMORY_LIMIT.one(float(info.get("maxmemory", 0)), cache, level),
        families.CACHE_CLIENTS.one(float(info.get("connected_clients", 0)), cache),
    ]


async def _queue_depth(client: Any, queue: Queue, own: _Lookups) -> tuple[float, list[tuple[str, float, float]]]:
    """Items waiting, and (group, lag, pending) per consumer group when the key is a stream.

    Each key read is tallied in `own` as Redis counts it: a hit if the key exists.
    Lists, sets and sorted sets cannot exist empty, so a length of 0 means no key.
    """
    if queue.layout is Layout.CELERY:
        keys = [queue.name if step == 0 else f"{queue.name}{_CELERY_PRIORITY_SEP}{step}"
                for step in queue.priority_steps]
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.llen(key)
        lengths = await pipe.execute()
        for n in lengths:
            own.key(n > 0)
        return float(sum(lengths)), []
    if queue.layout is Layout.RQ:
        n = await client.llen(f"rq:queue:{queue.name}")
        own.key(n > 0)
        return float(n), []
    key = queue.key or queue.name
    kind = await client.type(key)
    own.key(kind != "none")
    if kind == "none":
        return 0.0, []  # an empty queue: Redis deletes lists that drain
    if kind in ("list", "zset", "set"):
        n = await {"list": client.llen, "zset": client.zcard, "set": client.scard}[kind](key)
        own.key(n > 0)
        return float(n), []
    if kind == "stream":
        length = float(await client.xlen(key))
        own.key(True)
        groups = []
        for group in await client.xinfo_groups(key):
            pend = float(group.get("pending") or 0)
            # `lag` (Redis 7+) is None when Redis cannot tell (entries deleted or trimmed);
            # pending is then the best lower bound we have.
            lag = group.get("lag")
            groups.append((str(group["name"]), pend if lag is None else float(lag), pend))
        own.key(True)
        return length, groups
    raise ProbeError(f"queue {queue.name!r}: key {key!r} is a {kind}, not a list, stream, set or sorted set")
