"""Redis: cache statistics from INFO and the depth of queues kept in keys.

INFO gives hits, misses, evictions, expirations, keys, memory and clients; the
cache label is the target's name. Queues are read by layout: a plain key of
any type (list LLEN, stream XLEN plus consumer-group lag, sorted set ZCARD,
set SCARD), a Celery queue (a list named after the queue, plus its priority
lists) or an RQ queue (the list `rq:queue:<name>`).

INFO is read before the queue keys on each collect, so the hit counter it
reports never includes the probe's own reads of this collect (a read of an
existing key, LLEN included, counts as a hit in Redis).
"""

from __future__ import annotations

import asyncio
from enum import Enum
from typing import Any

from pydantic import Field, model_validator

from exporter import families
from exporter.collectors._probe import Backoff, ProbeError, describe, redact_url, url_password
from exporter.model import Family
from exporter.schema import Section, Target

# Celery's Redis transport puts priorities 1..9 in lists named `<queue>\x06\x16<priority>`.
_CELERY_PRIORITY_SEP = "\x06\x16"


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


class RedisCollector:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._client: Any = None
        self._backoff = Backoff()
        self._secret = url_password(config.url)

    def _connect(self) -> Any:
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # No client-side retries: one attempt per scrape, our own backoff between failures.
        return redis.asyncio.Redis.from_url(
            self.config.url, socket_timeout=self.config.timeout, socket_connect_timeout=self.config.timeout,
            retry=Retry(NoBackoff(), 0), decode_responses=True, client_name="apm-exporter",
            max_connections=2)

    async def collect(self) -> list[Family]:
        self._backoff.check()
        try:
            async with asyncio.timeout(self.config.timeout):
                if self._client is None:
                    self._client = self._connect()
                result = await self._read(self._client)
        except BaseException as err:
            # Any failure (cancellation included) may leave a reply half read: drop the connection.
            await self._drop()
            if isinstance(err, Exception):
                reason = describe(err, [self._secret])
                self._backoff.failed(reason)
                raise ProbeError(f"redis {redact_url(self.config.url)}: {reason}") from None
            raise
        self._backoff.succeeded()
        return result

    async def _read(self, client: Any) -> list[Family]:
        out: list[Family] = []
        if self.config.cache:
            out += _cache_families(self.config.name, await client.info())
        if self.config.queues:
            depths: list[tuple[tuple[str], float]] = []
            lags: list[tuple[tuple[str, str], float]] = []
            pending: list[tuple[tuple[str, str], float]] = []
            for queue in self.config.queues:
                label = queue.label or queue.name
                depth, groups = await _queue_depth(client, queue)
                depths.append(((label,), depth))
                for group, lag, pend in groups:
                    lags.append(((label, group), lag))
                    pending.append(((label, group), pend))
            out.append(families.QUEUE_DEPTH.family(depths))
            if lags:
                out.append(families.QUEUE_CONSUMER_LAG.family(lags))
                out.append(families.QUEUE_PENDING.family(pending))
        return out

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except Exception:  # closing a broken connection may fail; it is gone either way
                pass

    async def close(self) -> None:
        await self._drop()


def _cache_families(cache: str, info: dict[str, Any]) -> list[Family]:
    keys = sum(float(v.get("keys", 0)) for k, v in info.items() if k.startswith("db") and isinstance(v, dict))
    level = ""
    return [
        families.CACHE_REQUESTS.family([
            ((cache, level, "hit"), float(info.get("keyspace_hits", 0))),
            ((cache, level, "miss"), float(info.get("keyspace_misses", 0))),
        ]),
        families.CACHE_EVICTIONS.one(float(info.get("evicted_keys", 0)), cache, level),
        families.CACHE_EXPIRATIONS.one(float(info.get("expired_keys", 0)), cache, level),
        families.CACHE_ENTRIES.one(keys, cache, level),
        families.CACHE_MEMORY.one(float(info.get("used_memory", 0)), cache, level),
        families.CACHE_MEMORY_LIMIT.one(float(info.get("maxmemory", 0)), cache, level),
        families.CACHE_CLIENTS.one(float(info.get("connected_clients", 0)), cache),
    ]


async def _queue_depth(client: Any, queue: Queue) -> tuple[float, list[tuple[str, float, float]]]:
    """Items waiting, and (group, lag, pending) per consumer group when the key is a stream."""
    if queue.layout is Layout.CELERY:
        keys = [queue.name] + [f"{queue.name}{_CELERY_PRIORITY_SEP}{p}" for p in range(1, 10)]
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.llen(key)
        return float(sum(await pipe.execute())), []
    if queue.layout is Layout.RQ:
        return float(await client.llen(f"rq:queue:{queue.name}")), []
    key = queue.key or queue.name
    kind = await client.type(key)
    if kind == "list":
        return float(await client.llen(key)), []
    if kind == "zset":
        return float(await client.zcard(key)), []
    if kind == "set":
        return float(await client.scard(key)), []
    if kind == "stream":
        length = float(await client.xlen(key))
        groups = []
        for group in await client.xinfo_groups(key):
            pend = float(group.get("pending") or 0)
            # `lag` (Redis 7+) is None when Redis cannot tell (entries deleted or trimmed);
            # pending is then the best lower bound we have.
            lag = group.get("lag")
            groups.append((str(group["name"]), pend if lag is None else float(lag), pend))
        return length, groups
    if kind == "none":
        return 0.0, []  # an empty queue: Redis deletes lists that drain
    raise ProbeError(f"queue {queue.name!r}: key {key!r} is a {kind}, not a list, stream, set or sorted set")
