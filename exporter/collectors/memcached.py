"""memcached: `stats` into the cache families.

There is no well-kept asyncio memcached client, and the probe needs one
command: `stats` over the text protocol is a line out and `STAT name value`
lines back until `END`. A connection per collect keeps the reader trivially
correct after a timeout (no half-read reply to resynchronise); at one connect
per scrape interval, memcached does not notice.
"""

from __future__ import annotations

import asyncio

from exporter import families
from exporter.collectors import BaseProbe, ProbeError
from exporter.collectors.configs.memcached import Config
from exporter.model import Family
from exporter.schema import split_address

# A `stats` reply is about 90 lines; anything much longer is not memcached.
_MAX_REPLY = 64 * 1024


class MemcachedCollector(BaseProbe):
    """No connection is kept between scrapes, so reset() has nothing to drop."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._host, self._port = split_address(config.address)

    def describe(self) -> str:
        return f"memcached {self.config.address}"

    def address(self) -> tuple[str, int] | None:
        return self._host, self._port

    async def collect(self) -> list[Family]:
        return _families(self.config.name, await self._stats())

    async def _stats(self) -> dict[str, str]:
        reader, writer = await asyncio.open_connection(self._host, self._port, limit=_MAX_REPLY)
        try:
            writer.write(b"stats\r\n")
            await writer.drain()
            stats: dict[str, str] = {}
            size = 0
            while True:
                line = await reader.readline()
                size += len(line)
                if not line.endswith(b"\r\n") or size > _MAX_REPLY:
                    raise ProbeError("truncated or oversized reply to `stats`")
                parts = line.decode("ascii", "replace").split()
                if parts == ["END"]:
                    return stats
                if len(parts) != 3 or parts[0] != "STAT":
                    raise ProbeError(f"unexpected reply line {line[:80]!r}")
                stats[parts[1]] = parts[2]
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass


def _number(stats: dict[str, str], key: str) -> float:
    try:
        return float(stats.get(key, 0))
    except ValueError:
        raise ProbeError(f"stat {key} is not a number: {stats[key][:40]!r}") from None


def _families(cache: str, stats: dict[str, str]) -> list[Family]:
    level = ""
    return [
        families.CACHE_REQUESTS.family([
            ((cache, level, "hit"), _number(stats, "get_hits")),
            ((cache, level, "miss"), _number(stats, "get_misses")),
        ]),
        families.CACHE_EVICTIONS.one(_number(stats, "evictions"), cache, level),
        # memcached reclaims expired items lazily; `expired_unfetched` is what it knows expired unread.
        families.CACHE_EXPIRATIONS.one(_number(stats, "expired_unfetched"), cache, level),
        families.CACHE_ENTRIES.one(_number(stats, "curr_items"), cache, level),
        families.CACHE_MEMORY.one(_number(stats, "bytes"), cache, level),
        families.CACHE_MEMORY_LIMIT.one(_number(stats, "limit_maxbytes"), cache, level),
        families.CACHE_CLIENTS.one(_number(stats, "curr_connections"), cache),
    ]
