"""Every StatsD self-metric in one object, so listeners, the ingest path and workers share it.

The series live in the daemon's self-metrics store (a worker process has its own,
shipped to the daemon like its data). Counters for a reason or a listener are
created on first use; the reasons known up front exist from the start, so they
show as 0 rather than appearing with the first error.
"""

from __future__ import annotations

from exporter import families
from exporter.store import Counter, Gauge, Refusal, Store

PARSE_ERRORS = ("malformed_line", "invalid_value", "invalid_type", "invalid_utf8", "negative_counter")
TCP_ERRORS = ("idle_timeout", "line_too_long", "unterminated_line", "too_many_connections", "connection_error")
# Gauges each process sets for itself: a worker does not ship them (their sum would be nonsense).
PER_PROCESS = frozenset(s.name for s in (families.SERIES, families.SERIES_EXPIRED, families.STATSD_CACHE_ENTRIES,
                                         families.STATSD_MAPPING_RULES))


class ListenerCounters:
    """One listener's counters."""

    __slots__ = ("bytes", "lines", "packets", "samples")

    def __init__(self, store: Store, address: str) -> None:
        self.packets = store.counter(families.STATSD_PACKETS, address)
        self.bytes = store.counter(families.STATSD_BYTES, address)
        self.lines = store.counter(families.STATSD_LINES, address)
        self.samples = store.counter(families.STATSD_SAMPLES, address)


class StatsdStats:
    """Lines, samples, errors, drops and sizes of the StatsD path, by reason or listener."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.unmapped = store.counter(families.STATSD_LINES_UNMAPPED)
        self.series = store.gauge(families.SERIES)
        self.expired = store.counter(families.SERIES_EXPIRED)
        self.rules = store.gauge(families.STATSD_MAPPING_RULES)
        self.cache_entries = store.gauge(families.STATSD_CACHE_ENTRIES)
        self._errors: dict[str, Counter] = {r: store.counter(families.STATSD_PARSE_ERRORS, r) for r in PARSE_ERRORS}
        self._ignored: dict[str, Counter] = {}
        self._dropped: dict[str, Counter] = {r.value: store.counter(families.STATSD_SAMPLES_DROPPED, r.value)
                                             for r in Refusal}
        self._listeners: dict[str, ListenerCounters] = {}
        self._tcp: dict[str, Counter] = {}

    def listener(self, address: str) -> ListenerCounters:
        found = self._listeners.get(address)
        if found is None:
            found = self._listeners[address] = ListenerCounters(self.store, address)
        return found

    def tcp_errors(self) -> dict[str, Counter]:
        """reason -> counter, for TCP listeners (created with the first one)."""
        if not self._tcp:
            self._tcp = {r: self.store.counter(families.STATSD_TCP_ERRORS, r) for r in TCP_ERRORS}
        return self._tcp

    def error(self, reason: str) -> None:
        """One line rejected."""
        counter = self._errors.get(reason)
        if counter is None:
            counter = self._errors[reason] = self.store.counter(families.STATSD_PARSE_ERRORS, reason)
        counter.value += 1

    def ignore(self, reason: str) -> None:
        """One well-formed line not stored on purpose."""
        counter = self._ignored.get(reason)
        if counter is None:
            counter = self._ignored[reason] = self.store.counter(families.STATSD_LINES_IGNORED, reason)
        counter.value += 1

    def dropped(self, reason: str) -> Counter:
        """The counter of samples the store refused for this reason (a cache entry holds it)."""
        counter = self._dropped.get(reason)
        if counter is None:
            counter = self._dropped[reason] = self.store.counter(families.STATSD_SAMPLES_DROPPED, reason)
        return counter
