"""Redis probe against real redis-servers: INFO cache stats and server depth, replication to a second
server, queue layouts, SCAN-budgeted key patterns, TLS, faults, slow targets."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from exporter.collectors import ProbeError
from exporter.collectors.redis import Config, RedisCollector
from tests.collectors.helpers import failure, framed, run, values
from tests.support.servers import BlackHole, RedisServer
from tests.support.tls import make_pki


def collector(url: str, **extra: object) -> RedisCollector:
    return RedisCollector(Config.model_validate({"name": "sessions", "url": url, **extra}))


def test_cache_stats_match_what_the_client_did(redis_server: RedisServer) -> None:
    client = redis_server.client()
    for i in range(3):
        client.set(f"user:{i}", "x" * 100)
    client.set("ttl", "1", px=1)
    time.sleep(0.01)
    assert client.get("ttl") is None  # lazily expired: one miss, one expired key
    for _ in range(5):
        client.get("user:1")
    client.get("nope")
    client.config_set("maxmemory", 100 * 1024 * 1024)

    async def main() -> dict:
        probe = collector(redis_server.url)
        try:
            return values(await probe.collect())
        finally:
            await probe.close()

    got = run(main)
    info = client.info()
    assert got["cache_requests_total"] == {("sessions", "", "hit"): 5, ("sessions", "", "miss"): 2}
    assert got["cache_expirations_total"] == {("sessions", ""): 1}
    assert got["cache_evictions_total"] == {("sessions", ""): 0}
    assert got["cache_entries"] == {("sessions", ""): 3}
    assert got["cache_memory_limit_bytes"] == {("sessions", ""): 100 * 1024 * 1024}
    assert 0 < got["cache_memory_bytes"][("sessions", "")] <= info["used_memory_peak"]
    assert got["cache_clients"][("sessions",)] >= 1
    assert "queue_depth" not in got


def test_evictions_are_counted(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.config_set("maxmemory-policy", "allkeys-lru")
    client.config_set("maxmemory", 2 * 1024 * 1024)
    try:
        for i in range(400):
            client.set(f"blob:{i}", "x" * 10_000)

        async def main() -> dict:
            probe = collector(redis_server.url)
            try:
                return values(await probe.collect())
            finally:
                await probe.close()

        got = run(main)
        evicted = client.info("stats")["evicted_keys"]
        assert evicted > 0
        assert got["cache_evictions_total"] == {("sessions", ""): evicted}
        assert got["cache_entries"] == {("sessions", ""): client.dbsize()}
    finally:
        client.config_set("maxmemory-policy", "noeviction")


def test_queue_depth_for_every_layout(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.rpush("jobs", *range(7))                      # plain list, L = 7
    client.rpush("celery", *range(3))                    # Celery: default priority list …
    client.rpush("celery\x06\x163", *range(2))           # … plus priority 3
    client.rpush("rq:queue:default", *range(4))          # RQ
    client.zadd("delayed", {f"m{i}": i for i in range(6)})
    for i in range(10):
        client.xadd("events", {"n": i})
    client.xgroup_create("events", "workers", id="0")
    client.xreadgroup("workers", "w1", {"events": ">"}, count=4)  # 4 delivered, not acked
    client.xgroup_create("events", "late", id="$")

    queues = [
        {"name": "jobs"},
        {"name": "celery", "layout": "celery"},
        {"name": "default", "layout": "rq", "label": "rq-default"},
        {"name": "delayed"},
        {"name": "events"},
        {"name": "drained", "key": "gone"},
    ]

    async def main() -> dict:
        probe = collector(redis_server.url, queues=queues, cache=False)
        try:
            return values(await probe.collect())
        finally:
            await probe.close()

    got = run(main)
    assert got["queue_depth"] == {("jobs",): 7, ("celery",): 5, ("rq-default",): 4, ("delayed",): 6,
                                  ("events",): 10, ("drained",): 0}
    assert got["queue_consumer_lag"] == {("events", "workers"): 6, ("events", "late"): 0}
    assert got["queue_pending"] == {("events", "workers"): 4, ("events", "late"): 0}
    assert "cache_requests_total" not in got


def test_the_probes_own_queue_reads_are_not_counted_as_the_apps_hits(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.rpush("jobs", 1, 2)
    client.rpush("celery", 1)
    client.xadd("events", {"n": 1})
    client.xgroup_create("events", "workers", id="0")
    for _ in range(5):
        client.get("jobs:lock") or client.set("jobs:lock", "1")  # 1 miss, then 4 hits
    client.get("nothing")
    queues = [{"name": "jobs"}, {"name": "celery", "layout": "celery"}, {"name": "x", "layout": "rq"},
              {"name": "events"}, {"name": "gone"}]

    async def main() -> list[dict]:
        probe = collector(redis_server.url, queues=queues)
        try:
            seen = [values(await probe.collect()) for _ in range(3)]
            client.get("jobs:lock")  # one more hit by the app
            seen.append(values(await probe.collect()))
            return seen
        finally:
            await probe.close()

    *same, later = run(main)
    for got in same:
        assert got["cache_requests_total"] == {("sessions", "", "hit"): 4, ("sessions", "", "miss"): 2}
    assert later["cache_requests_total"] == {("sessions", "", "hit"): 5, ("sessions", "", "miss"): 2}
    info = client.info("stats")
    assert info["keyspace_hits"] > 5 and info["keyspace_misses"] > 2  # Redis itself counts the probe's reads


def test_a_key_of_the_wrong_type_is_an_error_not_a_zero(redis_server: RedisServer) -> None:
    redis_server.client().set("jobs", "not a queue")
    assert "is a string" in run(lambda: failure(collector(redis_server.url, queues=[{"name": "jobs"}])))


def test_a_paused_redis_does_not_hold_the_collect_beyond_its_timeout(redis_server: RedisServer) -> None:
    async def main() -> None:
        probe = collector(redis_server.url, timeout="300ms")
        try:
            await probe.collect()  # connected before the pause
            # SIGSTOP, not DEBUG SLEEP sent from a task and given 0.1 s to arrive: on a loaded
            # machine the read could go first and find the server awake. Stopped, it is paused
            # before the read starts, for as long as the test needs.
            redis_server.pause()
            try:
                # The job's deadline (or the driver's socket timeout) ends the read, not the outer wait_for.
                with pytest.raises(ProbeError, match="TimeoutError"):
                    await asyncio.wait_for(framed(probe).attempt(), timeout=10)
            finally:
                redis_server.resume()
        finally:
            await probe.close()

    run(main)


def test_a_socket_that_never_answers_times_out(black_hole: BlackHole) -> None:
    async def main() -> None:
        probe = collector(f"redis://127.0.0.1:{black_hole.port}/0", timeout="200ms")
        try:
            with pytest.raises(ProbeError, match="Timeout"):
                await asyncio.wait_for(framed(probe).attempt(), timeout=10)
            assert black_hole.connections == 1
        finally:
            await probe.close()

    run(main)


def test_cancellation_by_the_scraper_leaves_nothing_behind(black_hole: BlackHole) -> None:
    async def main() -> None:
        probe = collector(f"redis://127.0.0.1:{black_hole.port}/0", timeout="30s")
        try:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(framed(probe).attempt(), timeout=0.2)
        finally:
            await probe.close()

    run(main)  # run() fails on a leftover task or thread


def test_the_password_never_appears_in_an_error(redis_server: RedisServer) -> None:
    async def main() -> list[str]:
        messages = []
        for url in (f"redis://admin:hunter2secret@127.0.0.1:{redis_server.port}/0",  # no such user
                    "redis://admin:hunter2secret@127.0.0.1:1/0"):                 # nothing listens
            probe = collector(url)
            try:
                with pytest.raises(ProbeError) as err:
                    await framed(probe).attempt()
                messages.append(str(err.value))
            finally:
                await probe.close()
        return messages

    for message in run(main):
        assert "hunter2secret" not in message
        assert "<secret>" in message


# --- server depth: INFO all into apm_redis_* --------------------------------------------------

def collect_values(url: str, **extra: object) -> dict:
    async def main() -> dict:
        probe = collector(url, **extra)
        try:
            return values(await probe.collect())
        finally:
            await probe.close()

    return run(main)


def test_commandstats_count_the_apps_calls_and_failures(redis_server: RedisServer) -> None:
    client = redis_server.client()
    for i in range(7):
        client.set(f"k{i}", "v")
    for _ in range(3):
        client.get("k1")
    for _ in range(2):
        with pytest.raises(Exception, match="not an integer"):
            client.execute_command("INCR", "k1")  # executed and failed: failed_calls
    with pytest.raises(Exception, match="wrong number of arguments"):
        client.execute_command("GET")  # refused before execution: rejected_calls

    got = collect_values(redis_server.url)
    durations = got["redis_command_duration_seconds"]
    assert durations[("sessions", "set")].count == 7
    assert durations[("sessions", "get")].count == 3
    assert durations[("sessions", "incr")].count == 2
    assert got["redis_command_errors_total"][("sessions", "incr", "failed")] == 2
    assert got["redis_command_errors_total"][("sessions", "get", "rejected")] == 1
    assert got["redis_command_errors_total"][("sessions", "set", "failed")] == 0
    # The server's own figure, in seconds: what commandstats says, divided by a million.
    usec = client.info("commandstats")["cmdstat_set"]["usec"]
    assert durations[("sessions", "set")].sum == pytest.approx(usec / 1e6)
    assert ("sessions", "keys") not in durations


def test_latencystats_give_ordered_percentiles_per_command(redis_server: RedisServer) -> None:
    client = redis_server.client()
    for i in range(50):
        client.set(f"k{i}", "v" * i)
    summary = collect_values(redis_server.url)["redis_command_duration_seconds"][("sessions", "set")]
    got = dict(summary.quantiles)
    assert list(got) == [0.5, 0.99, 0.999]
    assert 0 < got[0.5] <= got[0.99] <= got[0.999]
    usec = client.info("latencystats")["latency_percentiles_usec_set"]
    assert got[0.99] == pytest.approx(float(usec["p99"]) / 1e6)


def test_keyspace_clients_memory_and_persistence(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.set("a", 1)
    client.set("b", 2, ex=100)
    other = redis_server.client(db=2)
    other.set("c", 3, ex=100)
    other.set("d", 4, ex=100)
    blocker = redis_server.client()
    waiting = threading.Thread(target=blocker.blpop, args=(["never"],), kwargs={"timeout": 30})
    waiting.start()
    try:
        deadline = time.monotonic() + 30
        while client.info("clients")["blocked_clients"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        got = collect_values(redis_server.url)
    finally:
        client.rpush("never", "x")  # releases the BLPOP
        waiting.join()
    info = client.info("all")
    assert got["redis_db_keys"] == {("sessions", "0"): 2, ("sessions", "2"): 2}
    assert got["redis_db_expiring_keys"] == {("sessions", "0"): 1, ("sessions", "2"): 2}
    assert got["redis_blocked_clients"] == {("sessions",): 1}
    assert got["redis_max_clients"] == {("sessions",): int(client.config_get("maxclients")["maxclients"])}
    assert got["redis_info"] == {("sessions", info["redis_version"], "primary"): 1}
    assert got["redis_aof_enabled"] == {("sessions",): 0}
    assert got["redis_rdb_last_bgsave_ok"] == {("sessions",): 1}
    assert got["redis_aof_last_write_ok"] == {("sessions",): 1}
    assert got["redis_rdb_changes_since_last_save"][("sessions",)] >= 4
    assert got["redis_rdb_last_save_timestamp_seconds"] == {("sessions",): info["rdb_last_save_time"]}
    assert 0 < got["redis_memory_rss_bytes"][("sessions",)]
    assert got["redis_memory_fragmentation_ratio"][("sessions",)] > 0
    assert got["redis_connected_replicas"] == {("sessions",): 0}
    assert "redis_primary_link_up" not in got  # a primary has no primary


def test_connections_refused_at_maxclients_are_counted(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.ping()

    async def main() -> dict:
        probe = collector(redis_server.url)
        try:
            await probe.collect()  # the probe holds its connection from here on
            connected = client.info("clients")["connected_clients"]
            client.config_set("maxclients", connected)
            try:
                for _ in range(3):  # Redis accepts, answers "-ERR max number of clients reached", closes
                    reader, writer = await asyncio.open_connection("127.0.0.1", redis_server.port)
                    assert b"max number of clients" in await reader.read()
                    writer.close()
                return values(await probe.collect())
            finally:
                client.config_set("maxclients", 10000)
        finally:
            await probe.close()

    got = run(main)
    assert got["redis_rejected_connections_total"] == {("sessions",): 3}


def test_server_false_keeps_only_the_cache_families(redis_server: RedisServer) -> None:
    got = collect_values(redis_server.url, server=False)
    assert "cache_requests_total" in got and "cache_memory_bytes" in got
    assert not [name for name in got if name.startswith("redis_")]


# --- replication: a second real Redis replicating from the first ------------------------------

def acknowledged(primary: RedisServer, replica: RedisServer) -> dict:
    """The primary's probe values once it has the replica's acknowledgement of everything
    (a replica acknowledges once a second, so the primary's view trails the replica's own)."""
    name = ("sessions", f"127.0.0.1:{replica.port}")
    deadline = time.monotonic() + 30
    while True:
        got = collect_values(primary.url)
        if got["redis_replica_lag_bytes"].get(name) == 0 or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_replication_on_both_sides(redis_server: RedisServer, redis_replica: RedisServer) -> None:
    redis_server.client().set("k", "v" * 1000)
    redis_replica.wait_in_sync()
    primary = acknowledged(redis_server, redis_replica)
    replica = collect_values(redis_replica.url)
    name = f"127.0.0.1:{redis_replica.port}"
    assert primary["redis_connected_replicas"] == {("sessions",): 1}
    assert primary["redis_replica_lag_bytes"] == {("sessions", name): 0}
    assert set(primary["redis_replica_ack_age_seconds"]) == {("sessions", name)}
    assert [labels[2] for labels in primary["redis_info"]] == ["primary"]
    assert [labels[2] for labels in replica["redis_info"]] == ["replica"]
    assert replica["redis_primary_link_up"] == {("sessions",): 1}
    assert ("sessions",) in replica["redis_primary_last_io_age_seconds"]
    # In sync: the same offset on both sides (give or take the 14-byte PING a primary sends its
    # replicas every 10 s, between the two reads), so a dashboard can subtract one from the other.
    offsets = (primary["redis_replication_offset_bytes"][("sessions",)],
               replica["redis_replication_offset_bytes"][("sessions",)])
    assert offsets[0] > 0 and abs(offsets[0] - offsets[1]) <= 2 * 14
    assert replica["redis_db_keys"] == {("sessions", "0"): 1}


def test_a_stalled_replica_shows_its_lag_in_bytes(redis_server: RedisServer, redis_replica: RedisServer) -> None:
    assert redis_replica.proc is not None
    client = redis_server.client()
    redis_replica.proc.send_signal(signal.SIGSTOP)  # it stops reading and acknowledging the stream
    try:
        for i in range(100):
            client.set(f"blob:{i}", "x" * 1000)
        got = collect_values(redis_server.url)
    finally:
        redis_replica.proc.send_signal(signal.SIGCONT)
    lag = got["redis_replica_lag_bytes"][("sessions", f"127.0.0.1:{redis_replica.port}")]
    assert lag >= 100 * 1000  # at least the payload written while it was stopped
    redis_replica.wait_in_sync()
    again = acknowledged(redis_server, redis_replica)
    assert again["redis_replica_lag_bytes"] == {("sessions", f"127.0.0.1:{redis_replica.port}"): 0}


def test_a_replica_whose_primary_is_gone_shows_the_link_down(
        redis_server: RedisServer, redis_replica: RedisServer) -> None:
    redis_server.stop()
    try:
        deadline = time.monotonic() + 30
        while redis_replica.client().info("replication")["master_link_status"] == "up":
            assert time.monotonic() < deadline, "the replica never noticed its primary stopped"
            time.sleep(0.05)
        got = collect_values(redis_replica.url)
    finally:
        redis_server.start()
    assert got["redis_primary_link_up"] == {("sessions",): 0}
    assert "redis_primary_last_io_age_seconds" not in got


# --- key patterns: SCAN within a budget, never KEYS -------------------------------------------

class SteppingClock:
    """Each reading is `step` seconds after the last: the time budget then allows a known number of calls."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_key_patterns_are_counted_over_scrapes_within_the_key_budget(redis_server: RedisServer) -> None:
    client = redis_server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(2500):
        pipe.set(f"session:{i}", 1)
    for i in range(500):
        pipe.set(f"user:{i}", 1)
    pipe.execute()
    # user:[0-4]* matches user:0 … user:4, user:10 … user:49 and user:100 … user:499: 445 keys.
    patterns = [{"pattern": "session:*"}, {"pattern": "user:[0-4]*", "label": "early-users"},
                {"pattern": "nothing:*"}]

    async def main() -> list[dict]:
        probe = collector(redis_server.url, key_patterns=patterns, scan_budget={"keys": 1000, "time": "10s"})
        try:
            return [values(await probe.collect()) for _ in range(6)]
        finally:
            await probe.close()

    scrapes = run(main)
    passes = [s["redis_key_scan_passes_total"][("sessions",)] for s in scrapes]
    # 3000 keys at (about) 1000 a scrape: no complete pass in the first two scrapes.
    assert passes[:2] == [0, 0] and passes[-1] >= 1
    assert "redis_key_pattern_keys" not in scrapes[0]
    done = next(s for s in scrapes if s["redis_key_scan_passes_total"][("sessions",)] >= 1)
    assert done["redis_key_pattern_keys"] == {("sessions", "session:*"): 2500, ("sessions", "early-users"): 445,
                                              ("sessions", "nothing:*"): 0}
    stats = client.info("commandstats")
    assert "cmdstat_keys" not in stats
    assert stats["cmdstat_scan"]["calls"] >= 3


def test_the_time_budget_bounds_scan_calls_per_scrape(redis_server: RedisServer) -> None:
    client = redis_server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(5000):
        pipe.set(f"k:{i}", 1)
    pipe.execute()

    async def main() -> list[int]:
        # Every clock reading is 1 s on: a 1.5 s budget allows exactly one SCAN call per scrape.
        probe = RedisCollector(Config.model_validate({
            "name": "sessions", "url": redis_server.url, "cache": False, "server": False,
            "key_patterns": [{"pattern": "k:*"}], "scan_budget": {"keys": 1_000_000, "time": 1.5}}),
            clock=SteppingClock(1.0))
        try:
            calls = []
            for _ in range(3):
                await probe.collect()
                calls.append(client.info("commandstats")["cmdstat_scan"]["calls"])
            return calls
        finally:
            await probe.close()

    assert run(main) == [1, 2, 3]


# --- the probe's own client: RESP on asyncio streams ---------------------------------------------

def test_the_probe_does_not_load_redis_py(redis_server: RedisServer) -> None:
    # redis-py's import alone made the daemon's RSS grow by 8.8 MiB: the probe must work without it.
    code = f"""
import asyncio, sys
from exporter.collectors.redis import Config, RedisCollector
async def main():
    probe = RedisCollector(Config(name="c", url="redis://127.0.0.1:{redis_server.port}/0", queues=[{{"name": "q"}}]))
    fams = await probe.collect()
    await probe.close()
    return fams
fams = asyncio.run(main())
assert any(f.spec.name == "redis_command_duration_seconds" for f in fams)
print(sorted(m for m in sys.modules if m == "redis" or m.startswith("redis.")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_password_and_database_from_the_url(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.execute_command("ACL", "SETUSER", "monitor", "on", ">m0nitor-pw", "~*", "&*", "+@all")
    try:
        redis_server.client(db=3).rpush("jobs", 1, 2)
        got = collect_values(f"redis://monitor:m0nitor-pw@127.0.0.1:{redis_server.port}/3",
                             queues=[{"name": "jobs"}])
        assert got["queue_depth"] == {("jobs",): 2}
        assert got["cache_clients"][("sessions",)] >= 1
    finally:
        client.execute_command("ACL", "DELUSER", "monitor")


def test_rediss_speaks_tls_and_checks_the_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    with RedisServer(tmp_path, tls=(pki.server.cert, pki.server.key)) as server:
        url = f"rediss://127.0.0.1:{server.port}/0"
        got = collect_values(f"{url}?ssl_ca_certs={pki.ca.cert}")
        assert got["redis_connected_replicas"] == {("sessions",): 0}

        # The system's CAs did not sign the test CA.
        assert "CERTIFICATE_VERIFY_FAILED" in run(lambda: failure(collector(url)))
