"""The Sink: StatsD packets -> series updates, with a routing cache on the hot path.

A line `name:value|type|@rate|#tags` is split at the first `|` and then at the
first `:`; the bytes around the value, (name, rest), key a cache entry that
leads straight to the series. A repeated line therefore costs two partitions,
one dict lookup, a float() (or, for counters and gauges, whose values repeat,
a second lookup: float() is the dearest step on this path) and an in-place
update. Everything else (parsing, mapping,
creating series, errors, sets, summaries, multi-value lines) runs on a miss.

One writer at a time: listeners in other threads call `handle_packet`, which
takes a lock per packet, so the store sees a single writer.
"""

from __future__ import annotations

import functools
import logging
import threading
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from exporter import families
from exporter.model import MetricType
from exporter.statsd.mapper import Mapper, MappingError, Route
from exporter.statsd.parser import (
    Event,
    Ignored,
    Kind,
    ParseError,
    parse_line,
    parse_value,
)
from exporter.store import Counter, Gauge, Histogram, Refusal, Store, Summary

log = logging.getLogger(__name__)

# Entry opcodes. The first three are handled inline in the loop; _OTHER goes to _apply.
_OBSERVE, _COUNT, _GAUGE, _OTHER = 0, 1, 2, 3
# The default rule's entries: the same plus _UNMAPPED_SHIFT, so they are counted as unmapped.
_UNMAPPED_SHIFT = 4
_U_OBSERVE, _U_COUNT = _OBSERVE + _UNMAPPED_SHIFT, _COUNT + _UNMAPPED_SHIFT
# _OTHER subkinds
_SUMMARY, _SET, _DROP, _REFUSED, _UNMAPPED = "summary", "set", "drop", "refused", "unmapped"

MAX_CACHE_ENTRIES = 200_000
MAX_VALUE_CACHE = 65_536
MAX_SET_MEMBERS = 10_000

Entry = tuple[Any, ...]


class Ingest:
    """Shared by every listener: one routing cache, one mapper, one store."""

    def __init__(self, mapper: Mapper, store: Store, stats: Store,
                 max_cache_entries: int = MAX_CACHE_ENTRIES) -> None:
        self.store = store
        self._stats = stats
        self._mapper = mapper
        self._max_cache = max_cache_entries
        self._cache: dict[tuple[bytes, bytes], Entry] = {}
        self._values: dict[bytes, float] = {}
        self._lock = threading.Lock()
        self._clock = store.clock  # `seen` times must be on the clock expire() compares with
        self._blank = 0
        self._errors: dict[str, Counter] = {}
        self._ignored: dict[str, Counter] = {}
        self._dropped: dict[str, Counter] = {}
        self._unmapped = self._counter(families.STATSD_LINES_UNMAPPED)
        self._series = self._gauge(families.SERIES)
        self._expired = self._counter(families.SERIES_EXPIRED)
        self._rules = self._gauge(families.STATSD_MAPPING_RULES)
        self._cache_size = self._gauge(families.STATSD_CACHE_ENTRIES)
        self._rules.value = len(mapper)
        # Reasons known up front show as 0 rather than appearing on first error.
        for reason in ("malformed_line", "invalid_value", "invalid_type", "invalid_utf8", "negative_counter"):
            self._error(reason, 0)
        for refusal in Refusal:
            self._drop(refusal.value, 0)

    # --- what listeners and the daemon call ------------------------------------------
    def sink(self, listener: str) -> ListenerSink:
        """A Sink for one listener, so lines and samples are counted per listener."""
        return ListenerSink(self, self._counter(families.STATSD_LINES, listener),
                            self._counter(families.STATSD_SAMPLES, listener))

    def set_mapper(self, mapper: Mapper) -> None:
        """Swap in new rules (reload): every cached route is forgotten; series stay."""
        with self._lock:
            self._mapper = mapper
            self._cache.clear()
            self._rules.value = len(mapper)
            self._cache_size.value = 0

    def expire(self) -> int:
        """Remove stale series; the cache may point at them, so it is cleared if any went."""
        with self._lock:
            expired = self.store.expire()
            if expired:
                self._cache.clear()
                self._expired.value += expired
            self._series.value = len(self.store)
            self._cache_size.value = len(self._cache)
        return expired

    @property
    def lock(self) -> threading.Lock:
        """Held while the store is written; whoever else writes it (worker merges) takes it too."""
        return self._lock

    def refused(self, refusal: Refusal) -> None:
        self._drop(refusal.value)

    def counted(self) -> None:
        self._series.value = len(self.store)

    def handle(self, lines_counter: Counter, samples_counter: Counter, data: bytes) -> None:
        """One packet of lines (listeners call it through their ListenerSink). The hot path:
        kept in one function, since a Python call costs as much as a line's dict lookups."""
        lock = self._lock
        lock.acquire()  # cheaper than `with` on this path (measured: 90 vs 190 ns)
        try:
            cache_get = self._cache.get
            value_get = self._values.get
            slow = self._slow
            apply = self._apply
            bisect = bisect_left
            now = self._clock()
            lines = data.split(b"\n")
            self._blank = 0
            nslow = 0
            got = 0
            unmapped = 0
            for line in lines:
                head, _, rest = line.partition(b"|")
                name, _, value = head.partition(b":")
                entry = cache_get((name, rest))
                if entry is None:
                    nslow += 1
                    got += slow(line, name, value, rest, None, now)
                    continue
                op = entry[0]
                if op == _OBSERVE:
                    # Timer values rarely repeat, so they skip the value cache.
                    try:
                        v = float(value)
                    except ValueError:
                        nslow += 1
                        got += slow(line, name, value, rest, entry, now)
                        continue
                    if v - v != 0.0:  # NaN or infinity
                        nslow += 1
                        self._error("non_finite_value")
                        continue
                    s = entry[1]
                    v *= entry[2]
                    weight = entry[5]
                    entry[3][bisect(entry[4], v)] += weight
                    s.sum += v * weight
                    s.seen = now
                elif op == _COUNT:
                    cached = value_get(value)
                    if cached is None or cached < 0.0:
                        nslow += 1
                        got += slow(line, name, value, rest, entry, now)
                        continue
                    s = entry[1]
                    s.value += cached * entry[2]
                    s.seen = now
                elif op == _GAUGE:
                    cached = value_get(value)
                    if cached is None:
                        nslow += 1
                        got += slow(line, name, value, rest, entry, now)
                        continue
                    s = entry[1]
                    sign = value[0]
                    if sign == 43 or sign == 45:  # "+" or "-": a relative update
                        s.value += cached * entry[2]
                    else:
                        s.value = cached * entry[2]
                    s.seen = now
                elif op == _U_COUNT:  # the default rule's counters, common without any rules
                    cached = value_get(value)
                    if cached is None or cached < 0.0:
                        nslow += 1
                        got += slow(line, name, value, rest, entry, now)
                        continue
                    s = entry[1]
                    s.value += cached * entry[2]
                    s.seen = now
                    unmapped += 1
                else:  # other unmapped, drop, refused, set, summary: counted or stored by _apply
                    nslow += 1
                    cached = value_get(value)
                    if cached is None:
                        got += slow(line, name, value, rest, entry, now)
                    else:
                        got += apply(entry, cached, value, now)
            if unmapped:
                self._unmapped.value += unmapped
            lines_counter.value += len(lines) - self._blank
            # Blank lines went through _slow too (and stored nothing).
            samples_counter.value += len(lines) - nslow + got
        except Exception:  # the daemon must outlive any bug on this path
            log.exception("statsd: failed to handle a packet")
            self._error("internal_error")
        finally:
            lock.release()

    # --- everything that is not a cached plain value ------------------------------------
    def _slow(self, line: bytes, name: bytes, value: bytes, rest: bytes, entry: Entry | None, now: float) -> int:
        """Samples stored for a line the loop could not finish by itself."""
        if entry is not None:
            v = self._plain_value(value)
            if v is not None:
                return self._apply(entry, v, value, now)
            # Several values, a set member or a bad value: the full parse says which.
            try:
                events = parse_line(line)
            except ParseError as err:
                self._error(err.reason)
                return 0
            return sum(self._apply_event(entry, event, now) for event in events)
        try:
            events = parse_line(line)
        except Ignored as err:
            self._ignore(err.reason)
            return 0
        except ParseError as err:
            self._error(err.reason)
            return 0
        if not events:
            self._blank += 1
            return 0
        try:
            route = self._mapper.route(events[0])
        except MappingError as err:
            self._error(err.reason)
            return 0
        entry = self._entry(route, events[0])
        # Only a line shaped name:value|rest has a key that fixes its route (see module doc).
        if b":" in line.partition(b"|")[0]:
            if len(self._cache) >= self._max_cache:
                self._cache.clear()  # crude but bounded; a busy key is back after one miss
            self._cache[(name, rest)] = entry
        return sum(self._apply_event(entry, event, now) for event in events)

    def _plain_value(self, value: bytes) -> float | None:
        """A finite decimal value, remembered for next time; None for anything else."""
        if b":" in value or not value:
            return None
        try:
            v = parse_value(value.decode("ascii"))
        except (UnicodeDecodeError, ParseError):
            return None
        if len(self._values) >= MAX_VALUE_CACHE:
            self._values.clear()
        self._values[value] = v
        return v

    def _entry(self, route: Route | None, event: Event) -> Entry:
        if route is None:
            return (_OTHER, _DROP, event.kind is Kind.COUNTER)
        series = self.store.series(route.spec, route.labels, route.ttl)
        self._series.value = len(self.store)
        self._cache_size.value = len(self._cache) + 1
        if isinstance(series, Refusal):
            entry: Entry = (_OTHER, _REFUSED, self._drop_counter(series.value), event.kind is Kind.COUNTER)
        elif event.kind is Kind.SET and isinstance(series, Gauge):
            entry = (_OTHER, _SET, series)
        elif isinstance(series, Histogram):
            entry = (_OBSERVE, series, route.scale, series.buckets, series.bounds, 1.0 / event.rate)
        elif isinstance(series, Summary):
            entry = (_OTHER, _SUMMARY, series, route.scale, max(1, round(1.0 / event.rate)))
        elif isinstance(series, Counter):
            entry = (_COUNT, series, route.scale / event.rate)
        elif isinstance(series, Gauge) and route.spec.type is MetricType.GAUGE:
            entry = (_GAUGE, series, route.scale)
        else:  # pragma: no cover - the mapper builds specs from the event kind
            entry = (_OTHER, _REFUSED, self._drop_counter(Refusal.TYPE_CONFLICT.value), False)
        if route.unmapped:
            if entry[0] == _OTHER:
                return (_OTHER, _UNMAPPED, entry)
            return (entry[0] + _UNMAPPED_SHIFT, *entry[1:])
        return entry

    def _apply_event(self, entry: Entry, event: Event, now: float) -> int:
        if event.kind is Kind.SET:
            return self._apply(entry, 1.0, event.member.encode(), now, member=event.member)
        # The sign tells a gauge delta from a set; for other kinds it is ignored.
        sign = b"+" if event.kind is Kind.GAUGE_DELTA else b""
        return self._apply(entry, event.value, sign, now)

    def _apply(self, entry: Entry, v: float, value: bytes, now: float, member: str | None = None) -> int:
        """One value through any entry; the hot loop inlines the first three cases."""
        op = entry[0]
        if op > _OTHER:
            stored = self._apply((op - _UNMAPPED_SHIFT, *entry[1:]), v, value, now, member)
            self._unmapped.value += stored
            return stored
        if op == _OBSERVE:
            s = entry[1]
            v *= entry[2]
            entry[3][bisect_left(entry[4], v)] += entry[5]
            s.sum += v * entry[5]
        elif op == _COUNT:
            if v < 0.0:
                self._error("negative_counter")
                return 0
            s = entry[1]
            s.value += v * entry[2]
        elif op == _GAUGE:
            s = entry[1]
            if value[:1] in (b"+", b"-"):
                s.value += v * entry[2]
            else:
                s.value = v * entry[2]
        else:
            kind = entry[1]
            if kind is _UNMAPPED:
                stored = self._apply(entry[2], v, value, now, member)
                self._unmapped.value += stored
                return stored
            # A negative counter is a bad line first, as the parser says on an uncached line.
            if (kind is _DROP or kind is _REFUSED) and entry[-1] and v < 0.0:
                self._error("negative_counter")
                return 0
            if kind is _DROP:
                self._ignore("mapping_drop")
                return 0
            if kind is _REFUSED:
                entry[2].value += 1
                return 0
            s = entry[2]
            if kind is _SUMMARY:
                s.observe(v * entry[3], entry[4])
            elif kind is _SET:
                if member is None:
                    member = value.decode("utf-8", "replace")
                if s.members is None:
                    s.members = set()
                if len(s.members) < MAX_SET_MEMBERS:
                    s.members.add(member)
                s.value = float(len(s.members))
        s.seen = now
        return 1

    # --- self-metrics -----------------------------------------------------------------------
    def _counter(self, spec: Any, *labels: str) -> Counter:
        series = self._stats.series(spec, labels)
        assert isinstance(series, Counter)
        return series

    def _gauge(self, spec: Any, *labels: str) -> Gauge:
        series = self._stats.series(spec, labels)
        assert isinstance(series, Gauge)
        return series

    def _error(self, reason: str, amount: int = 1) -> None:
        counter = self._errors.get(reason)
        if counter is None:
            counter = self._errors[reason] = self._counter(families.STATSD_PARSE_ERRORS, reason)
        counter.value += amount

    def _ignore(self, reason: str) -> None:
        counter = self._ignored.get(reason)
        if counter is None:
            counter = self._ignored[reason] = self._counter(families.STATSD_LINES_IGNORED, reason)
        counter.value += 1

    def _drop_counter(self, reason: str) -> Counter:
        counter = self._dropped.get(reason)
        if counter is None:
            counter = self._dropped[reason] = self._counter(families.STATSD_SAMPLES_DROPPED, reason)
        return counter

    def _drop(self, reason: str, amount: int = 1) -> None:
        self._drop_counter(reason).value += amount


class ListenerSink:
    """What a listener holds: `handle_packet(data)` never raises and counts per listener."""

    __slots__ = ("handle_packet",)

    def __init__(self, ingest: Ingest, lines: Counter, samples: Counter) -> None:
        # A partial, not a method: one Python frame less per packet.
        self.handle_packet: Callable[[bytes], None] = functools.partial(ingest.handle, lines, samples)
