"""StatsD packets -> series updates: the hot loop, over a routing cache (statsd/routes.py).

A line `name:value|type|@rate|#tags` is split at the first `|` and then at the
first `:`; the bytes around the value, name and rest, find a cache entry that
leads straight to the series (a tagged line's by name, then rest; an untagged
one's by rest, then name: routes.Generation). A repeated line therefore costs
two partitions, two dict lookups (no key tuple to build, hash and compare), a
float() (or, for counters and gauges, whose values repeat, a third lookup:
float() is the dearest step on this path) and an in-place update. The loop is
the only place that applies a counter, a gauge or an observation; a line seen
for the first time gets its entry from `Routes.route` and then goes through the
same code. Everything else (sets,
summaries, drops, refusals, several values on one line, bad values) is
`Routes.apply`. Counting the default rule's lines costs the other lines nothing:
their entries' opcodes are raised above OTHER, and one comparison finds them.

One writer at a time: listeners in other threads call `handle_packet`, which
takes a lock per packet, so the store sees a single writer.
"""

from __future__ import annotations

import functools
import logging
import threading
from bisect import bisect_left
from collections.abc import Callable
from math import frexp, inf

from exporter.heap import release_free_heap
from exporter.statsd.mapper import Mapper
from exporter.statsd.routes import (
    COUNT,
    OBSERVE,
    OTHER,
    TAGGED,
    UNMAPPED,
    Routes,
)
from exporter.statsd.stats import StatsdStats
from exporter.store import Counter, Series, Store

log = logging.getLogger(__name__)

# What the loop reads for a counter's or gauge's value that is not a plain decimal: a counter
# fails `x >= 0.0` on it, a gauge the identity test, so both go to apply().
NOT_PLAIN = float("nan")

# An expiry pass that removed this many series hands the freed heap back to the OS (glibc keeps
# it otherwise: bench/series_memory.py, 3-4 MiB more left after 100k-1M series expired).
TRIM_AFTER = 10_000


class Ingest:
    """Shared by every listener: one routing cache, one mapper, one store."""

    def __init__(self, mapper: Mapper, store: Store, stats: StatsdStats,
                 max_cache_entries: int | None = None) -> None:
        self.store = store
        self.stats = stats
        self.routes = Routes(mapper, store, stats, max_cache_entries)
        self._lock = threading.Lock()
        self._clock = store.clock  # `seen` times must be on the clock expire() compares with
        routes = self.routes
        routes.feed = self._feed
        routes.renewed = self._renewed
        self._renewed()
        stats.rules.value = len(mapper)

    def _renewed(self) -> None:
        """Look up once what the loop calls, again whenever Routes replaces its cache (a new
        generation, an expiry, a reload): an attribute less to read per packet."""
        routes = self.routes
        cache = routes.cache
        self._slow = (cache.by_name, cache.by_rest, routes.values, routes.route, routes.plain, routes.apply)

    def sink(self, listener: str) -> ListenerSink:
        """A Sink for one listener, so lines and samples are counted per listener."""
        counters = self.stats.listener(listener)
        return ListenerSink(self, counters.lines, counters.samples)

    def set_mapper(self, mapper: Mapper) -> None:
        """Swap in new rules (reload): every cached route is forgotten; series stay."""
        with self._lock:
            self.routes.mapper = mapper
            self.routes.clear()
            self.stats.rules.value = len(mapper)
            self.stats.cache_entries.value = 0

    def expire(self) -> int:
        """Remove stale series, and the cached routes to them (only those: hot keys stay)."""
        with self._lock:
            routes = self.routes
            routes.expire_instances(self._clock())
            gone: list[Series] = []
            expired = self.store.expire(gone=gone)
            if expired:
                routes.forget(set(gone))
                self.stats.expired.value += expired
            self.stats.series.value = len(self.store)
            self.stats.cache_entries.value = len(routes.cache) + len(routes.old)
        del gone  # the last references to the expired series: freed before the trim
        if expired >= TRIM_AFTER:
            release_free_heap()  # outside the lock: it walks the heap
        return expired

    def counted(self) -> None:
        """Someone else added series under the lock (worker merges, OTLP): say how many there are."""
        self.stats.series.value = len(self.store)

    @property
    def lock(self) -> threading.Lock:
        """Held while the store is written; whoever else writes it (worker merges) takes it too."""
        return self._lock

    def handle(self, lines_counter: Counter, samples_counter: Counter, data: bytes) -> None:
        """One packet of lines (listeners call it through their ListenerSink)."""
        lock = self._lock
        lock.acquire()  # cheaper than `with` on this path (measured: 90 vs 190 ns)
        try:
            lines = data.split(b"\n")
            stored, unmapped = self._feed(lines, self._clock())
            if unmapped:
                self.stats.unmapped.value += unmapped
            routes = self.routes
            blank = routes.blank
            if blank:
                routes.blank = 0
            lines_counter.value += len(lines) - blank
            samples_counter.value += stored
        except Exception:  # the daemon must outlive any bug on this path
            log.exception("statsd: failed to handle a packet")
            self.stats.error("internal_error")
        finally:
            lock.release()

    def _feed(self, lines: list[bytes], now: float) -> tuple[int, int]:
        """Samples stored and lines the default rule took. The hot path: kept in one function,
        since a Python call costs as much as a line's dict lookups."""
        by_name, by_rest, values, route, plain, apply = self._slow
        bisect = bisect_left
        tagged = TAGGED
        # Locals, not globals: the loop compares opcodes several times a line.
        observe_op, count_op, other_op, unmapped_op = OBSERVE, COUNT, OTHER, UNMAPPED
        nslow = 0  # lines that stored nothing, or whose samples are in `got`
        got = 0  # samples stored by `apply`
        unmapped = 0
        x: float | None  # a counter's or gauge's value (None from plain(): not a plain decimal)
        for line in lines:
            head, _, rest = line.partition(b"|")
            name, _, value = head.partition(b":")
            try:  # subscripts, not .get(): no call on a hit, and a miss is parsed anyway
                entry = by_name[name][rest] if tagged in rest else by_rest[rest][name]
            except KeyError:
                found = route(line, name, rest)
                if found is None:  # blank, bad or an event: counted by route()
                    nslow += 1
                    continue
                entry, value = found
            op = entry[0]
            if op > other_op:  # the default rule's plain entries, raised by UNMAPPED: counted here
                unmapped += 1
                op -= unmapped_op
            # The shorter branch first, and no comparison in front of a long jump: CPython 3.11
            # does not specialise a comparison whose jump needs EXTENDED_ARG (3x dearer).
            if op > observe_op:
                if op < other_op:  # a counter or a gauge: their values repeat, so a dict has them
                    try:
                        x = values[value]
                    except KeyError:
                        x = plain(value)
                        if x is None:  # not a plain decimal: apply(), below
                            x = NOT_PLAIN
                    if op == count_op:
                        if x >= 0.0:  # neither negative nor NaN, which apply() counts
                            s = entry[1]
                            s.value += x * entry[2]
                            s.seen = now
                            continue
                    elif x is not NOT_PLAIN:
                        s = entry[1]
                        sign = value[0]
                        if sign == 43 or sign == 45:  # a gauge's "+n" or "-n" changes it
                            s.value += x * entry[2]
                        else:
                            s.value = x * entry[2]
                        s.seen = now
                        continue
            else:  # OBSERVE or NATIVE
                # Timer values rarely repeat, so they skip the value cache.
                try:
                    v = float(value)
                except ValueError:  # several values (DogStatsD) or a bad one: apply(), below
                    v = NOT_PLAIN
                if not v - v:  # neither NaN nor infinity (v - v is NaN), which apply() counts
                    s = entry[1]
                    v *= entry[2]
                    weight = entry[5]
                    s.sum += v * weight
                    s.seen = now
                    if op == observe_op:
                        entry[3][bisect(entry[4], v)] += weight
                        continue
                    if s.zero_threshold < v < inf:  # a native histogram's common case, inlined
                        if entry[3] is not None:  # both: the classic buckets too
                            entry[3][bisect(entry[4], v)] += weight
                        frac, exp = frexp(v)
                        key = (bisect(s.fractions, frac) + exp * s.width + s.base) >> s.shift
                        buckets = s.positive
                        count = buckets.get(key)
                        if count is None:
                            s.add_bucket(buckets, key, weight)
                        else:
                            buckets[key] = count + weight
                    else:
                        s.place(v, weight)
                    continue
            # Sets, summaries, drops, refusals, and the values the loop does not take go to
            # apply(), which counts the default rule's lines it takes itself.
            if op != other_op:
                unmapped -= entry[0] > other_op  # raised: the default rule's line, which apply() counts
            nslow += 1
            got += apply(line, entry, value, now)
        return len(lines) - nslow + got, unmapped


class ListenerSink:
    """What a listener holds: `handle_packet(data)` never raises and counts per listener."""

    __slots__ = ("handle_packet",)

    def __init__(self, ingest: Ingest, lines: Counter, samples: Counter) -> None:
        # A partial, not a method: one Python frame less per packet.
        self.handle_packet: Callable[[bytes], None] = functools.partial(ingest.handle, lines, samples)
