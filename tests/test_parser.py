"""The StatsD line parser: every dialect as scenario tables, and arbitrary bytes never crash it.

Where a case follows a peer, its name says which: statsd_exporter's pkg/line (the
reference for reading), or the Datadog agent where the two differ (docs/statsd.md).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.statsd.parser import Event, Ignored, Kind, ParseError, parse_line

C, G, GD, T, H, D, S = (Kind.COUNTER, Kind.GAUGE, Kind.GAUGE_DELTA, Kind.TIMER, Kind.HISTOGRAM,
                        Kind.DISTRIBUTION, Kind.SET)

GOOD = [
    ("plain counter", b"hits:1|c", [Event(C, "hits", 1.0)]),
    ("counter with rate", b"hits:3|c|@0.1", [Event(C, "hits", 3.0, (), 0.1)]),
    ("gauge", b"temp:21.5|g", [Event(G, "temp", 21.5)]),
    ("gauge increment", b"conns:+3|g", [Event(GD, "conns", 3.0)]),
    ("gauge decrement", b"conns:-2|g", [Event(GD, "conns", -2.0)]),
    ("timer", b"lat:12.5|ms", [Event(T, "lat", 12.5)]),
    ("histogram", b"size:50|h", [Event(H, "size", 50.0)]),
    ("distribution", b"lat:0.3|d", [Event(D, "lat", 0.3)]),
    ("set", b"users:alice|s", [Event(S, "users", 1.0, (), 1.0, "alice")]),
    ("scientific", b"x:1e3|g", [Event(G, "x", 1000.0)]),
    ("float() leniency kept: underscores", b"x:1_000|c", [Event(C, "x", 1000.0)]),
    ("crlf", b"hits:1|c\r", [Event(C, "hits", 1.0)]),
    ("dogstatsd tags", b"op:1|ms|#route:/a,outcome:ok",
     [Event(T, "op", 1.0, (("route", "/a"), ("outcome", "ok")))]),
    ("dogstatsd tag value with colon", b"op:1|c|#url:http://x", [Event(C, "op", 1.0, (("url", "http://x"),))]),
    ("dogstatsd bare tag skipped", b"op:1|c|#canary,a:b", [Event(C, "op", 1.0, (("a", "b"),))]),
    ("dogstatsd rate and tags", b"op:1|c|@0.5|#a:b", [Event(C, "op", 1.0, (("a", "b"),), 0.5)]),
    ("dogstatsd tags then rate", b"op:1|c|#a:b|@0.5", [Event(C, "op", 1.0, (("a", "b"),), 0.5)]),
    ("statsd_exporter: dogstatsd 1.2 container id becomes a label", b"op:1|c|#a:b|c:abc123",
     [Event(C, "op", 1.0, (("a", "b"), ("container_id", "abc123")))]),
    ("statsd_exporter: container id without tags", b"op:1|c|c:abc123", [Event(C, "op", 1.0, (("container_id", "abc123"),))]),
    ("statsd_exporter: dogstatsd 1.3 timestamp is dropped", b"op:1|c|T1656581400", [Event(C, "op", 1.0)]),
    ("statsd_exporter: timestamp with tags", b"op:1|g|#a:b|T1656581400", [Event(G, "op", 1.0, (("a", "b"),))]),
    ("datadog agent: external data is accepted", b"op:1|c|e:it-false", [Event(C, "op", 1.0)]),
    ("statsd_exporter: # on every dogstatsd tag key (the PHP client)", b"op:1|c|##a:1,#b:2",
     [Event(C, "op", 1.0, (("a", "1"), ("b", "2")))]),
    ("statsd_exporter: etsy multi-metric line", b"op:1|c:2|c:3|ms",
     [Event(C, "op", 1.0), Event(C, "op", 2.0), Event(T, "op", 3.0)]),
    ("statsd_exporter: etsy multi-metric with rates and name tags", b"op,a=b:1|c|@0.5:2|g",
     [Event(C, "op", 1.0, (("a", "b"),), 0.5), Event(G, "op", 2.0, (("a", "b"),))]),
    ("statsd_exporter: dogstatsd tags turn multi-metric off", b"op:1|c|#a:b", [Event(C, "op", 1.0, (("a", "b"),))]),
    ("statsd_exporter: dogstatsd empty tag value skipped", b"op:1|c|#a:,b:c", [Event(C, "op", 1.0, (("b", "c"),))]),
    ("statsd_exporter: signalfx tags before influx are the tags", b"hits[a=b],c=d:1|c",
     [Event(C, "hits,c=d", 1.0, (("a", "b"),))]),
    ("dogstatsd multi-value", b"op:1:2:3|ms", [Event(T, "op", 1.0), Event(T, "op", 2.0), Event(T, "op", 3.0)]),
    ("multi-value with tags", b"op:1:2|d|#a:b", [Event(D, "op", 1.0, (("a", "b"),)), Event(D, "op", 2.0, (("a", "b"),))]),
    ("influx tags", b"op,route=/a,code=200:1|c", [Event(C, "op", 1.0, (("route", "/a"), ("code", "200")))]),
    ("librato tags", b"op#route=/a,code=200:1|c", [Event(C, "op", 1.0, (("route", "/a"), ("code", "200")))]),
    ("signalfx tags", b"op[route=/a,code=200]:1|c", [Event(C, "op", 1.0, (("route", "/a"), ("code", "200")))]),
    ("signalfx tags mid-name", b"my.[route=/a]op:1|c", [Event(C, "my.op", 1.0, (("route", "/a"),))]),
    ("utf-8 name and tag", "café:1|c|#ville:zürich".encode(), [Event(C, "café", 1.0, (("ville", "zürich"),))]),
    ("negative gauge value is a delta", b"t:-5|g", [Event(GD, "t", -5.0)]),
    ("negative timer", b"t:-5|ms", [Event(T, "t", -5.0)]),
    ("blank", b"", []),
    ("spaces", b"   ", []),
]


@pytest.mark.parametrize(("line", "events"), [(c[1], c[2]) for c in GOOD], ids=[c[0] for c in GOOD])
def test_parses(line: bytes, events: list[Event]) -> None:
    assert parse_line(line) == events


BAD = [
    ("no value", b"hits", "malformed_line"),
    ("no type", b"hits:1", "malformed_line"),
    ("empty name", b":1|c", "empty_name"),
    ("unknown type", b"hits:1|x", "invalid_type"),
    ("empty type", b"hits:1|", "invalid_type"),
    ("not a number", b"hits:abc|c", "invalid_value"),
    ("empty value", b"hits:|c", "invalid_value"),
    ("nan", b"hits:nan|g", "non_finite_value"),
    ("inf", b"hits:inf|ms", "non_finite_value"),
    ("huge overflows to inf", b"hits:1e999|g", "non_finite_value"),
    ("non-ascii digits", "hits:\u0661|c".encode(), "invalid_value"),
    ("negative counter", b"hits:-1|c", "negative_counter"),
    ("unknown field", b"hits:1|c|zzz", "unknown_field"),
    ("empty field", b"hits:1|c||#a:b", "malformed_line"),
    ("statsd_exporter: empty container id", b"hits:1|c|c:", "malformed_container_id"),
    ("mixed tags", b"hits,a=b:1|c|#c:d", "mixed_tagging_styles"),
    ("invalid utf-8", b"hi\xfft:1|c", "invalid_utf8"),
    ("multi-value counter", b"hits:1:2|c", "malformed_line"),
    ("truncated", b"apm.operation:12.", "malformed_line"),
    ("truncated after pipe", b"apm.operation:12|m", "invalid_type"),
    ("too many tags", b"x:1|c|#" + b",".join(b"k%d:v" % i for i in range(65)), "too_many_tags"),
    ("absurdly long name", b"x" * 300 + b":1|c", "name_too_long"),
    ("longer than a datagram", b"x:1|c|#a:" + b"v" * 70000, "line_too_long"),
    ("long tag value", b"x:1|c|#a:" + b"v" * 2000, "tag_value_too_long"),
]


@pytest.mark.parametrize(("line", "reason"), [(c[1], c[2]) for c in BAD], ids=[c[0] for c in BAD])
def test_rejects_with_reason(line: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_line(line)
    assert caught.value.reason == reason
    assert not isinstance(caught.value, Ignored)


# Lines taken with a part set aside: the events, and the reason counted for that part.
REPAIRED = [
    ("statsd_exporter: rate zero is taken as 1", b"hits:1|c|@0", [Event(C, "hits", 1.0)], ["invalid_sample_rate"]),
    ("rate above one is taken as 1", b"hits:1|c|@2", [Event(C, "hits", 1.0)], ["invalid_sample_rate"]),
    ("negative rate is taken as 1", b"hits:2|ms|@-0.5", [Event(T, "hits", 2.0)], ["invalid_sample_rate"]),
    ("statsd_exporter: rate garbage is taken as 1", b"hits:1|c|@x", [Event(C, "hits", 1.0)], ["invalid_sample_rate"]),
    ("malformed timestamp: the field goes, not the line", b"hits:1|c|Tsoon", [Event(C, "hits", 1.0)],
     ["malformed_timestamp"]),
    ("statsd_exporter: influx tag without = is skipped", b"hits,ab,c=d:1|c", [Event(C, "hits", 1.0, (("c", "d"),))],
     ["invalid_tag"]),
    ("statsd_exporter: librato empty value skipped", b"hits#a=,c=d:1|c", [Event(C, "hits", 1.0, (("c", "d"),))],
     ["invalid_tag"]),
    ("statsd_exporter: signalfx bare tag skipped", b"hits[canary,a=b]:1|c", [Event(C, "hits", 1.0, (("a", "b"),))],
     ["invalid_tag"]),
    ("statsd_exporter: unclosed signalfx bracket leaves the name as it is", b"hits[a=b:1|c",
     [Event(C, "hits[a=b", 1.0)], ["invalid_tag"]),
    ("statsd_exporter: lone closing bracket", b"hits]a=b:1|c", [Event(C, "hits]a=b", 1.0)], ["invalid_tag"]),
    ("brackets the wrong way round", b"a]b[c=d:1|c", [Event(C, "a]b[c=d", 1.0)], ["invalid_tag"]),
]


@pytest.mark.parametrize(("line", "events", "notes"), [c[1:] for c in REPAIRED], ids=[c[0] for c in REPAIRED])
def test_keeps_the_line_and_notes_the_part_set_aside(line: bytes, events: list[Event], notes: list[str]) -> None:
    found: list[str] = []
    assert parse_line(line, notes=found) == events
    assert found == notes


@pytest.mark.parametrize(("line", "reason"), [
    (b"_e{5,4}:title|text|#a:b", "event"),
    (b"_sc|my.check|0|#a:b", "service_check"),
])
def test_dogstatsd_events_are_recognised_not_misparsed(line: bytes, reason: str) -> None:
    with pytest.raises(Ignored) as caught:
        parse_line(line)
    assert caught.value.reason == reason


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_events_or_a_parse_error(data: bytes) -> None:
    try:
        events = parse_line(data)
    except ParseError as err:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", err.reason)
        return
    for event in events:
        assert event.name
        assert event.value == event.value and abs(event.value) != float("inf")
        assert 0.0 < event.rate <= 1.0


_NAME = st.text(alphabet=st.characters(blacklist_characters=":|,#[]\n\r@", blacklist_categories=("Cs",)), min_size=1,
                max_size=40).filter(lambda s: s.strip() == s and s.strip() and not s.startswith("_e{"))


@settings(max_examples=500, deadline=None)
@given(_NAME, st.floats(min_value=0, max_value=1e12, allow_nan=False),
       st.sampled_from([b"c", b"g", b"ms", b"h", b"d"]))
def test_well_formed_lines_round_trip(name: str, value: float, kind: bytes) -> None:
    line = name.encode() + b":" + repr(value).encode() + b"|" + kind
    [event] = parse_line(line)
    assert event.name == name and event.value == value
