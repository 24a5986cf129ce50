"""Gauges reported per process instance: absolute values, summed, silent instances forgotten.

The wire format (docs/statsd-conventions.md): `name:<value>|g|#tags,apm_instance:<id>`. The
tag is folded away (it is no label), the value is absolute whatever its sign, and the daemon
exports the sum over the instances heard from within `statsd.instance_expiry`.
"""

from __future__ import annotations

from tests.test_ingest import Harness

CONFIG = {"instance_expiry": "10s"}


def pool_active(h: Harness) -> float | None:
    got = h.values().get(("pool_connections", ("db", "active")))
    return None if got is None else float(got)  # type: ignore[arg-type]


def test_instances_are_summed_and_the_tag_is_no_label() -> None:
    h = Harness(CONFIG)
    h.send("apm.pool.active:3|g|#pool:db,apm_instance:101.a", "apm.pool.active:4|g|#pool:db,apm_instance:102.b")
    assert pool_active(h) == 7
    (family,) = [f for f in h.store.collect() if f.spec.name == "pool_connections"]
    assert family.spec.labels == ("pool", "state") and len(family.samples) == 1


def test_a_repeated_report_replaces_that_instance_s_share_and_a_sign_is_part_of_the_value() -> None:
    h = Harness(CONFIG)
    for _ in range(3):  # every flush resends: the same absolute value, never added up
        h.send("apm.pool.active:3|g|#pool:db,apm_instance:101.a", "apm.pool.active:4|g|#pool:db,apm_instance:102.b")
    assert pool_active(h) == 7
    h.send("apm.pool.active:-2|g|#pool:db,apm_instance:101.a", "apm.pool.active:+1|g|#pool:db,apm_instance:102.b")
    assert pool_active(h) == -1


def test_an_instance_not_heard_from_within_the_expiry_no_longer_counts() -> None:
    h = Harness(CONFIG)
    h.send("apm.pool.active:3|g|#pool:db,apm_instance:101.a", "apm.pool.active:4|g|#pool:db,apm_instance:102.b")
    h.clock.now += 6
    h.send("apm.pool.active:4|g|#pool:db,apm_instance:102.b")  # 101 went quiet (SIGKILLed)
    h.ingest.expire()
    assert pool_active(h) == 7
    h.clock.now += 6  # 12 s since 101 was heard, 6 s since 102
    h.ingest.expire()
    assert pool_active(h) == 4


def test_a_plain_statsd_gauge_keeps_its_meaning() -> None:
    h = Harness(CONFIG)
    h.send("apm.pool.active:3|g|#pool:db", "apm.pool.active:+2|g|#pool:db")
    assert pool_active(h) == 5
    h.clock.now += 60
    h.ingest.expire()
    assert pool_active(h) == 5
