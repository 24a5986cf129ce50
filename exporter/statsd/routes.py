"""The slow path of StatsD ingest: a new line becomes a cache entry, and what the loop leaves.

statsd/ingest.py's loop handles a line whose key (the bytes around its value) is in
the cache and whose entry is a plain counter, gauge or observation; everything else
comes here: parsing and mapping a line seen for the first time (`route`), and
applying the entries the loop does not (`apply`: sets, summaries, drops, refusals,
and the lines of plain entries whose value the loop does not take: several values,
fed back one at a time, or a bad one, whose error the parser names).

An entry is a tuple the loop reads by position, its opcode first. The plain
entries (all but OTHER) hold their series second; the default rule's have their
opcode raised by UNMAPPED, so that the loop counts those lines without a test on
every other line, and they need no "unmapped" field (a counter's entry is a
3-tuple: 16 bytes a cached key less than with one). The OTHER entries hold the
"unmapped" flag (1 for the default rule's lines, else 0) second:

    (OBSERVE, histogram, scale, buckets, bounds, weight)
    (NATIVE,  native histogram, scale, classic buckets or None, bounds or None, weight)
    (COUNT,   counter, scale / rate)
    (GAUGE,   gauge, scale)
    (OTHER,   unmapped, SUMMARY, summary, scale, count)
    (OTHER,   unmapped, SET, gauge)
    (OTHER,   unmapped, INSTANCE, gauge, scale, instance)  a gauge one client instance reports
    (OTHER,   unmapped, DROP, is_counter)
    (OTHER,   unmapped, REFUSED, is_counter, the counter of that refusal)
    (OTHER,   0,        SPLIT)  an Etsy multi-metric line, never cached
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from itertools import compress
from operator import itemgetter
from typing import Any

from exporter.model import Exemplar, MetricType
from exporter.statsd.mapper import Drop, Mapper, MappingError, Route
from exporter.statsd.parser import (
    Event,
    Ignored,
    Kind,
    ParseError,
    Tags,
    exemplar,
    multi_metric,
    parse_line,
    parse_value,
)
from exporter.statsd.stats import StatsdStats
from exporter.store import Counter, Gauge, Histogram, Refusal, Store, Summary
from exporter.wire import TAG_INSTANCE

log = logging.getLogger(__name__)

# NATIVE sorts below OBSERVE so that the loop tells both observers apart from the rest with
# one comparison (`op <= OBSERVE`), and counters and gauges with another (`op < OTHER`).
NATIVE, OBSERVE, COUNT, GAUGE, OTHER = -1, 0, 1, 2, 3
UNMAPPED = 5  # NATIVE + UNMAPPED > OTHER
SUMMARY, SET, DROP, REFUSED, SPLIT, INSTANCE = "summary", "set", "drop", "refused", "split", "instance"

MIN_CACHE_ENTRIES = 200_000
MAX_VALUE_CACHE = 65_536
MAX_SET_MEMBERS = 10_000

Entry = tuple[Any, ...]
Key = tuple[bytes, bytes]
_SERIES = itemgetter(1)  # a plain entry's series (an OTHER entry has its unmapped flag there)
TAGGED = 35  # b"#": `35 in rest` is a memchr; `b"#" in rest` first fails to read b"#" as an int


class Generation:
    """One generation of the routing cache, read as a mapping of (name, rest) keys but held as
    two levels with no key tuple: a tagged line's entry by its name, then its rest (a family's
    series share the name and differ in tags); an untagged line's by its rest, then its name
    (`c`, `ms|@0.1` are shared by many names). The part shared is held once, as the outer key;
    a series costs its inner slot and the bytes that tell it apart (bench/series_memory.py:
    64 bytes a series less than a dict of (name, rest) tuples). The loop reads `by_name` and
    `by_rest` itself (statsd/ingest.py); they are changed in place, never replaced."""

    __slots__ = ("by_name", "by_rest", "size")

    def __init__(self) -> None:
        self.by_name: dict[bytes, dict[bytes, Entry]] = {}
        self.by_rest: dict[bytes, dict[bytes, Entry]] = {}
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def _inner(self, key: Key) -> tuple[dict[bytes, dict[bytes, Entry]], bytes, bytes]:
        name, rest = key
        return (self.by_name, name, rest) if TAGGED in rest else (self.by_rest, rest, name)

    def get(self, key: Key) -> Entry | None:
        outer, first, second = self._inner(key)
        inner = outer.get(first)
        return inner.get(second) if inner is not None else None

    def __setitem__(self, key: Key, entry: Entry) -> None:
        outer, first, second = self._inner(key)
        inner = outer.get(first)
        if inner is None:
            inner = outer[first] = {}
        if second not in inner:
            self.size += 1
        inner[second] = entry

    def pop(self, key: Key, default: Entry | None = None) -> Entry | None:
        outer, first, second = self._inner(key)
        inner = outer.get(first)
        if inner is None or second not in inner:
            return default
        self.size -= 1
        entry = inner.pop(second)
        if not inner:
            del outer[first]
        return entry

    def clear(self) -> None:
        self.by_name.clear()
        self.by_rest.clear()
        self.size = 0

    def items(self) -> list[tuple[Key, Entry]]:
        """Every (name, rest) key with its entry (tests and tools; the loop never calls it)."""
        return [((n, r), e) for n, inner in self.by_name.items() for r, e in inner.items()] + \
               [((n, r), e) for r, inner in self.by_rest.items() for n, e in inner.items()]

    def without(self, gone: set[Any], dead: set[Key]) -> None:
        """Drop the entries of series that went and the `dead` keys. An inner dict most of whose
        entries went is built anew, as a dict never gives back the table of its largest size.
        Each inner dict's entries are scanned in C; Python steps once per outer key (a family's
        name, or an untagged rest), so per series only where each name has one tag set."""
        for outer in (self.by_name, self.by_rest):
            for first, inner in list(outer.items()):
                stale = list(compress(inner, map(gone.__contains__, map(_SERIES, inner.values()))))
                if not stale:
                    continue
                self.size -= len(stale)
                if len(stale) == len(inner):
                    del outer[first]
                elif len(stale) * 2 > len(inner):
                    went = set(stale)
                    outer[first] = {k: e for k, e in inner.items() if k not in went}
                else:
                    for k in stale:
                        del inner[k]
        for key in dead:
            self.pop(key)


class Routes:
    """The routing cache and the value cache the loop reads, and how they are filled."""

    def __init__(self, mapper: Mapper, store: Store, stats: StatsdStats,
                 max_cache_entries: int | None = None) -> None:
        self.mapper = mapper
        self.store = store
        self.stats = stats
        self.max_cache = max_cache_entries  # None: sized from the store's limits (cache_limit)
        # Two generations: the loop reads `cache`; a full one becomes `old` (statsd/ingest.py).
        self.cache = Generation()
        self.old = Generation()
        # Cached keys of OTHER entries (sets, summaries, instance gauges, drops, refusals), which
        # hold their series at entry[3]: an expiry looks at them one by one (forget).
        self.others: set[Key] = set()
        self.values: dict[bytes, float] = {}
        self.blank = 0  # blank lines seen since the loop last took them (they are not lines)
        # Kept here, not in a slot of every Gauge: a set's members, and the shares (value and
        # time heard) of the instances that report a gauge, whose silent ones expire_instances()
        # forgets.
        self.members: dict[Gauge, set[str]] = {}
        self.shares: dict[Gauge, dict[str, tuple[float, float]]] = {}
        # The loop, for lines this splits into several (set by Ingest): (samples, unmapped lines).
        self.feed: Callable[[list[bytes], float], tuple[int, int]] = lambda lines, now: (0, 0)
        # Called whenever `cache` is another dict, for the loop that holds it (set by Ingest).
        self.renewed: Callable[[], None] = lambda: None

    def route(self, line: bytes, name: bytes, rest: bytes) -> tuple[Entry, bytes] | None:
        """The entry for a line whose key is not cached (cached if the key fixes it) and the
        line's value; None when the line was counted instead (blank, a parse or mapping
        error, an event)."""
        if self.old:
            entry = self.old.pop((name, rest), None)
            if entry is not None:  # a key of the old generation: promoted, not parsed again
                self._keep(name, rest, entry)
                return entry, line.partition(b"|")[0].partition(b":")[2]
        notes: list[str] = []
        try:
            events = parse_line(line, notes)
        except Ignored as err:
            self.stats.ignore(err.reason)
            return None
        except ParseError as err:
            self.stats.error(err.reason)
            return None
        if not events:
            self.blank += 1
            return None
        for reason in notes:  # a part set aside, the line kept
            self.stats.error(reason)
        head = line.partition(b"|")[0]
        if len(events) > 1 and multi_metric(line.partition(b":")[2]):
            return (OTHER, 0, SPLIT), b""  # the key holds every value: not worth caching
        tags, labels = exemplar(events[0].tags, self.mapper.exemplar_tag, self.mapper.exemplar_span_tag)
        traced = tags is not events[0].tags
        if traced:
            # An exemplar: its trace and span ids are no labels; the line's key is unique, so it is not cached.
            events = [e._replace(tags=tags) for e in events]
        event, instance = _instance(events[0])
        try:
            route = self.mapper.route(event)
        except MappingError as err:
            self.stats.error(err.reason)
            return None
        entry = self._entry(route, event)
        unmapped = int(route.unmapped)
        if instance is not None and entry[0] == GAUGE:
            entry = (OTHER, unmapped, INSTANCE, entry[1], entry[2], instance)
        if traced and labels and not isinstance(route, Drop):
            self._exemplar(entry, route, labels, events[-1].value)
        if unmapped and entry[0] < OTHER:  # the default rule's plain entry (module docstring)
            entry = (entry[0] + UNMAPPED, *entry[1:])
        if traced:
            return entry, line.partition(b":")[2].partition(b"|")[0]
        # Only a line shaped name:value|rest has a key that fixes its route (see ingest.py);
        # in another (`a|b:1|c`, a name with a `|`) the value is where the parser found it.
        # A line with a part set aside is not cached either, so that part is counted each time.
        if b":" not in head or notes:
            return entry, line.partition(b":")[2].partition(b"|")[0]
        self._keep(name, rest, entry)
        return entry, head.partition(b":")[2]

    def _keep(self, name: bytes, rest: bytes, entry: Entry) -> None:
        """Cache an entry in the young generation; a full one becomes the old generation,
        whose keys a miss promotes back (route), so hot keys outlive any number of new ones."""
        if len(self.cache) >= self.cache_limit():
            self.old = self.cache
            self.cache = Generation()
            self.renewed()
            self.others = {key for key in self.others if self.old.get(key) is not None}
        key = (name, rest)
        self.cache[key] = entry
        if entry[0] == OTHER:
            self.others.add(key)
        self.stats.cache_entries.value = len(self.cache) + len(self.old)

    def cache_limit(self) -> int:
        """Keys the young generation holds before it becomes the old one: one for every series the
        store may hold, and a quarter more for keys that share a series or have none (drops,
        refusals), so that a working set as large as `max_series` is served from the cache (at
        least MIN_CACHE_ENTRIES). Both generations together hold at most twice as many."""
        if self.max_cache is not None:
            return self.max_cache
        limit = self.store.limits.max_series
        return max(MIN_CACHE_ENTRIES, limit + limit // 4)

    def clear(self) -> None:
        """Forget every route (new rules); series stay."""
        self.cache = Generation()
        self.old = Generation()
        self.others = set()
        self.renewed()

    def forget(self, gone: set[Any]) -> None:
        """Forget the routes to these (expired) series and what is kept here for them (members,
        shares), and every refusal, which the room they left may now turn into a series; the
        other keys stay cached (a session id family that churns through TTL does not cost
        every hot key a miss)."""
        cache, old = self.cache, self.old
        dead = set()
        for key in list(self.others):  # the few entries whose series is not at entry[1]
            entry = cache.get(key) or old.get(key)
            if entry is None:
                self.others.discard(key)
            elif entry[2] is REFUSED or entry[3] in gone:
                dead.add(key)
                self.others.discard(key)
        cache.without(gone, dead)
        old.without(gone, dead)
        self.values.clear()
        if self.members:  # the members and shares of the sets and gauges that went
            self.members = {g: m for g, m in self.members.items() if g not in gone}
        if self.shares:
            self.shares = {g: p for g, p in self.shares.items() if g not in gone}

    def _exemplar(self, entry: Entry, route: Route, labels: Tags, value: float) -> None:
        """Keep the exemplar on its bucket (histograms) or its counter, with the value it added."""
        op = entry[0]
        if op <= COUNT:  # NATIVE, OBSERVE or COUNT; gauges and the rest have none
            scaled = value * entry[2]
            found = Exemplar(labels, scaled, time.time())
            if op == COUNT:
                self.store.exemplar(route.spec, entry[1], found)
            else:
                entry[1].exemplar(scaled, found)

    def plain(self, value: bytes) -> float | None:
        """A finite decimal value, remembered for the loop; None for anything else."""
        if b":" in value or not value:
            return None
        try:
            v = parse_value(value.decode("ascii"))
        except (UnicodeDecodeError, ParseError):
            return None
        if len(self.values) >= MAX_VALUE_CACHE:
            self.values.clear()
        self.values[value] = v
        return v

    def split(self, line: bytes) -> list[bytes]:
        """A DogStatsD multi-value line (`t:1:2:3|ms`) as one line per value, which the loop
        takes as if they had been sent so; [] after counting why the line is bad."""
        if not self._parse(line):
            return []
        name, _, tail = line.partition(b":")
        values, _, fields = tail.partition(b"|")
        return [name + b":" + v + b"|" + fields for v in values.split(b":")]

    def apply(self, line: bytes, entry: Entry, value: bytes, now: float) -> int:
        """Samples stored for a line the loop did not finish."""
        if entry[2] is SPLIT:
            # An Etsy multi-metric line: one line per metric, through the loop (`feed`).
            name, _, rest = line.partition(b":")
            stored, unmapped = self.feed([name + b":" + sample for sample in rest.split(b":")], now)
            self.stats.unmapped.value += unmapped
            return stored
        if entry[0] != OTHER:
            # A plain entry's line the loop did not take: several values (DogStatsD `t:1:2|ms`),
            # one line each through the loop and still one line of the default rule's, or a bad
            # value, which split() counts.
            more = self.split(line)
            if len(more) == 1:
                log.error("statsd: the loop refused a line the parser accepts: %r", line[:200])
                self.stats.error("internal_error")
                return 0
            if not more:
                return 0
            self.stats.unmapped.value += entry[0] > OTHER  # raised: the default rule's
            return self.feed(more, now)[0]
        kind = entry[2]
        if kind is SET:
            events = self._parse(line)
            if not events:
                return 0
            self.stats.unmapped.value += entry[1]
            return self._add_member(entry[3], events[0].member, now)
        if kind is INSTANCE:
            return self._set_part(line, entry, value, now)
        v = self.plain(value)
        if v is None:
            events = self._parse(line)
            if not events:
                return 0
            values = [e.value for e in events]
        else:
            # A negative counter is a bad line first, as the parser says on an uncached one.
            if v < 0.0 and (kind is DROP or kind is REFUSED) and entry[3]:
                self.stats.error("negative_counter")
                return 0
            values = [v]
        self.stats.unmapped.value += entry[1]
        if kind is DROP:
            self.stats.ignore("mapping_drop")
            return 0
        if kind is REFUSED:
            entry[4].value += len(values)
            return 0
        s: Summary = entry[3]
        for v in values:
            s.observe(v * entry[4], entry[5])
        s.seen = now
        return len(values)

    def _parse(self, line: bytes) -> list[Event]:
        """The line's events, or [] after counting its error."""
        try:
            return parse_line(line)
        except ParseError as err:
            self.stats.error(err.reason)
            return []

    def _set_part(self, line: bytes, entry: Entry, value: bytes, now: float) -> int:
        """One instance's absolute value, its sign included (`-3` is -3, not a decrement)."""
        v = self.plain(value)
        if v is None:
            events = self._parse(line)
            if not events:
                return 0
            v = events[0].value
        self.stats.unmapped.value += entry[1]
        gauge: Gauge = entry[3]
        shares = self.shares.get(gauge)
        if shares is None:
            shares = self.shares[gauge] = {}
        share = v * entry[4]
        old = shares.get(entry[5])
        shares[entry[5]] = (share, now)
        # Adding the difference keeps the update O(1); expire_instances re-sums, so float error
        # cannot accumulate past one expiry pass.
        gauge.value += share - (old[0] if old is not None else 0.0)
        gauge.seen = now
        return 1

    def expire_instances(self, now: float) -> None:
        """Forget the shares of instances not heard from within the mapper's instance_expiry
        (a SIGKILLed process); each gauge is their sum again."""
        heard_since = now - self.mapper.instance_expiry
        for gauge, shares in list(self.shares.items()):
            for instance in [k for k, (_, seen) in shares.items() if seen < heard_since]:
                del shares[instance]
            gauge.value = float(sum(v for v, _ in shares.values()))
            if not shares:
                del self.shares[gauge]

    def _add_member(self, s: Gauge, member: str, now: float) -> int:
        members = self.members.get(s)
        if members is None:
            members = self.members[s] = set()
        if len(members) < MAX_SET_MEMBERS:
            members.add(member)
        s.value = float(len(members))
        s.seen = now
        return 1

    def _entry(self, route: Route | Drop, event: Event) -> Entry:
        counter = event.kind is Kind.COUNTER
        if isinstance(route, Drop):
            return (OTHER, int(route.unmapped), DROP, counter)
        unmapped = int(route.unmapped)
        series = self.store.series(route.spec, route.labels, route.ttl)
        self.stats.series.value = len(self.store)
        if isinstance(series, Refusal):
            return (OTHER, unmapped, REFUSED, counter, self.stats.dropped(series.value))
        if event.kind is Kind.SET and isinstance(series, Gauge):
            return (OTHER, unmapped, SET, series)
        if isinstance(series, Histogram):
            return (OBSERVE, series, route.scale, series.buckets, series.bounds, _per(1.0, event.rate))
        if route.spec.native is not None and route.spec.type is MetricType.HISTOGRAM:
            # The store made a NativeHistogram (not imported here: a classic daemon never loads it).
            return (NATIVE, series, route.scale, series.classic, series.bounds,  # type: ignore[union-attr]
                    _per(1.0, event.rate))
        if isinstance(series, Summary):
            if route.max_age:
                series.use_max_age(route.max_age, self.store.clock)
            return (OTHER, unmapped, SUMMARY, series, route.scale, max(1, round(1.0 / event.rate)))
        if isinstance(series, Counter):
            return (COUNT, series, _per(route.scale, event.rate))
        if isinstance(series, Gauge) and route.spec.type is MetricType.GAUGE:
            return (GAUGE, series, route.scale)
        # pragma: no cover - the mapper builds specs from the event kind
        return (OTHER, unmapped, REFUSED, False, self.stats.dropped(Refusal.TYPE_CONFLICT.value))


def _per(scale: float, rate: float) -> float:
    """scale / rate, the same float object when the rate is 1 (no 24 bytes per cache entry)."""
    return scale if rate == 1.0 else scale / rate


def _instance(event: Event) -> tuple[Event, str | None]:
    """A gauge's instance tag taken off (it is no label) with its value; other events as they are.
    Such a line's value is absolute whatever its sign, so it is read as a plain gauge."""
    if event.kind is not Kind.GAUGE and event.kind is not Kind.GAUGE_DELTA:
        return event, None
    for i, (key, value) in enumerate(event.tags):
        if key == TAG_INSTANCE:
            return event._replace(kind=Kind.GAUGE, tags=event.tags[:i] + event.tags[i + 1:]), value
    return event, None
