"""PostgreSQL probe against a real PostgreSQL 15 with pg_stat_statements, and a replica of it made
by pg_basebackup: connections, statements, every database, replication, locks, checkpoints, tables."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from exporter.collectors import ProbeError
from exporter.collectors.postgres import Config, PostgresCollector, query_label
from tests.collectors.helpers import framed, run, values
from tests.support.servers import BlackHole, PostgresReplicaServer, PostgresServer


def collector(dsn: str, **extra: object) -> PostgresCollector:
    return PostgresCollector(Config.model_validate({"name": "main-db", "dsn": dsn, **extra}))


def wait_for_states(conn: Any, app: str, **want: int) -> None:
    """Poll on a connection the test keeps open (and idle) across both reads: closing one
    here would race the probe's count with the backend's exit."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = dict(conn.execute(
            "SELECT state, count(*) FROM pg_stat_activity WHERE application_name = %s GROUP BY 1",
            (app,)).fetchall())
        if all(rows.get(k.replace("_", " "), 0) == v for k, v in want.items()):
            return
        time.sleep(0.05)
    raise AssertionError(f"{app}: states never reached {want}: {rows}")


def run_as(server: PostgresServer, app: str, statement: str) -> None:
    with server.connect(application_name=app) as conn:
        conn.execute(statement)


def test_connections_by_state_against_max_connections(postgres_server: PostgresServer) -> None:
    async def main() -> tuple[dict, dict]:
        probe = collector(postgres_server.dsn(), statements=0)
        poller = postgres_server.connect(application_name="t-poll")
        sleepers: list[threading.Thread] = []
        try:
            # Two clients stay active on a lock the test holds until the second read is done (a
            # fixed pg_sleep let them finish first when the read was slow); the holder's own idle
            # session is there for both reads, so it is not in the difference.
            with postgres_server.lock_held() as blocked:
                before = values(await probe.collect())
                idle = [postgres_server.connect(application_name="t-idle") for _ in range(3)]
                in_tx = postgres_server.connect(application_name="t-idle")
                in_tx.execute("BEGIN")
                in_tx.execute("SELECT 1")
                try:
                    sleepers += [threading.Thread(target=run_as, args=(postgres_server, "t-idle", blocked))
                                 for _ in range(2)]
                    for thread in sleepers:
                        thread.start()
                    wait_for_states(poller, "t-idle", active=2, idle=3, idle_in_transaction=1)
                    after = values(await probe.collect())
                finally:
                    for conn in [*idle, in_tx]:
                        conn.close()
            return before, after
        finally:
            for thread in sleepers:
                thread.join()
            poller.close()
            await probe.close()

    before, after = run(main)
    conns = lambda got, state: got["pool_connections"].get(("main-db", state), 0)  # noqa: E731
    assert conns(after, "active") - conns(before, "active") == 2
    assert conns(after, "idle") - conns(before, "idle") == 3
    assert conns(after, "idle_in_transaction") - conns(before, "idle_in_transaction") == 1
    assert conns(before, "active") >= 1  # the probe's own query
    assert after["pool_max_connections"][("main-db",)] == 50
    assert "postgres_statement_calls_total" not in after


def test_top_statements_from_pg_stat_statements(postgres_server: PostgresServer) -> None:
    with postgres_server.connect() as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        for _ in range(4):
            conn.execute("SELECT pg_sleep(0.05)")
        expected = conn.execute(
            "SELECT queryid::text, calls, total_exec_time FROM pg_stat_statements "
            "WHERE query = 'SELECT pg_sleep($1)'").fetchone()

    async def main() -> dict:
        probe = collector(postgres_server.dsn(), statements=3)
        try:
            return values(await probe.collect())
        finally:
            await probe.close()

    got = run(main)
    labels = ("main-db", "postgres", expected[0], "SELECT pg_sleep($1)")
    assert got["postgres_statement_calls_total"][labels] == 4
    assert got["postgres_statement_seconds_total"][labels] == pytest.approx(expected[2] / 1000)
    assert got["postgres_statement_seconds_total"][labels] >= 0.2  # four sleeps of 50 ms
    assert got["postgres_statement_mean_seconds"][labels] == pytest.approx(expected[2] / 1000 / 4)
    assert len(got["postgres_statement_calls_total"]) <= 3


def test_only_the_top_statements_by_total_time_are_exported_with_their_own_texts(
        postgres_server: PostgresServer) -> None:
    """Twelve statements of known cost: the ranking (done without texts) and the texts fetched
    after it must pair up, the slowest three and no other, and a steady top N reads no text again."""
    with postgres_server.connect() as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        for k in range(12):
            # k extra columns make k distinct statements (pg_stat_statements ignores aliases).
            conn.execute(f"SELECT pg_sleep({0.02 * (k + 1)}), '{'x' * 2000}'" + ", 0" * k)
        rows = conn.execute(
            "SELECT queryid::text, query, total_exec_time FROM pg_stat_statements "
            "WHERE query LIKE 'SELECT pg_sleep(%' ORDER BY total_exec_time DESC LIMIT 3").fetchall()

    async def main() -> list[dict]:
        probe = collector(postgres_server.dsn(), statements=3)
        try:
            return [values(await probe.collect()) for _ in range(3)]
        finally:
            await probe.close()

    scrapes = run(main)
    got = scrapes[0]["postgres_statement_seconds_total"]
    assert all(list(s["postgres_statement_seconds_total"]) == list(got) for s in scrapes)
    with postgres_server.connect() as conn:
        texts_read = conn.execute("SELECT sum(calls) FROM pg_stat_statements "
                                  "WHERE query LIKE '%min(query) AS query%'").fetchone()[0]
    assert texts_read == 1  # the same top three in three scrapes: their texts were read once
    assert [labels[3] for labels in got] == [query_label(query) for _, query, _ in rows]
    assert {labels[2]: seconds for labels, seconds in got.items()} == pytest.approx(
        {queryid: total / 1000 for queryid, _, total in rows})
    assert [labels[3].count("$") for labels in got] == [13, 12, 11]  # k = 11, 10, 9: the slowest


def test_without_pg_stat_statements_only_connections_are_exported(postgres_server: PostgresServer) -> None:
    with postgres_server.connect() as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'plain'").fetchone():
            conn.execute("CREATE DATABASE plain")

    async def main() -> dict:
        probe = collector(postgres_server.dsn("plain"))
        try:
            return values(await probe.collect())
        finally:
            await probe.close()

    got = run(main)
    assert ("main-db",) in got["pool_max_connections"]
    assert "postgres_statement_calls_total" not in got


def test_a_silent_socket_times_out(black_hole: BlackHole) -> None:
    async def main() -> None:
        probe = collector(f"postgresql://u:topsecret@127.0.0.1:{black_hole.port}/db", timeout="300ms")
        try:
            with pytest.raises(ProbeError, match="TimeoutError") as err:
                await asyncio.wait_for(framed(probe).attempt(), timeout=10)
            assert "topsecret" not in str(err.value)
        finally:
            await probe.close()

    run(main)


def test_query_labels_are_one_bounded_line() -> None:
    assert query_label("SELECT a,\n\t  b FROM t") == "SELECT a, b FROM t"
    assert len(query_label("SELECT " + "x, " * 200)) == 160
    assert query_label("ALTER ROLE app PASSWORD 'it''s secret'") == "ALTER ROLE app PASSWORD '<secret>'"
    assert query_label("create user u with encrypted password 'x'") == \
        "create user u with encrypted password '<secret>'"
    assert query_label("ALTER USER u PASSWORD $x$pw$x$") == "ALTER USER u PASSWORD '<secret>'"
    assert query_label("SELECT password FROM users") == "SELECT password FROM users"


# --- server depth: every database from one target ---------------------------------------------

def fresh_database(server: PostgresServer, name: str) -> None:
    with server.connect() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")


def collect_values(dsn: str, **extra: object) -> dict:
    async def main() -> dict:
        probe = collector(dsn, **extra)
        try:
            return values(await probe.collect())
        finally:
            await probe.close()

    return run(main)


def database_stats(server: PostgresServer, name: str) -> dict[str, Any]:
    from psycopg.rows import dict_row

    with server.connect(row_factory=dict_row) as conn:
        row = conn.execute("SELECT * FROM pg_stat_database WHERE datname = %s", (name,)).fetchone()
        assert row is not None
        return dict(row)


def wait_for_stats(server: PostgresServer, name: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """PostgreSQL 15 flushes a backend's statistics at most once a second and at exit: poll."""
    deadline = time.monotonic() + 15
    while True:
        stats = database_stats(server, name)
        if done(stats) or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


def test_every_database_of_the_server_from_one_target(postgres_server: PostgresServer) -> None:
    fresh_database(postgres_server, "shop")
    fresh_database(postgres_server, "blog")
    before = database_stats(postgres_server, "shop")
    with postgres_server.connect("shop") as conn:
        conn.execute("CREATE TABLE t (k int PRIMARY KEY)")      # 1 commit
        for i in range(5):
            conn.execute("INSERT INTO t VALUES (%s)", (i,))     # 5 commits
        for _ in range(2):
            with pytest.raises(Exception, match="duplicate key"):
                conn.execute("INSERT INTO t VALUES (1)")        # 2 rollbacks
        conn.execute("SET work_mem = '64kB'")                   # 1 commit
        conn.execute("SELECT g FROM generate_series(1, 200000) g ORDER BY g DESC").fetchall()  # 1, spills
    wait_for_stats(postgres_server, "shop", lambda s: s["xact_rollback"] - before["xact_rollback"] >= 2
                   and s["xact_commit"] - before["xact_commit"] >= 8)
    # Autovacuum's workers run transactions of their own in every database: the probe's figures
    # lie between the server's own, read just before and just after.
    first = database_stats(postgres_server, "shop")
    got = collect_values(postgres_server.dsn(), statements=0)
    last = database_stats(postgres_server, "shop")
    shop = ("main-db", "shop")

    def between(value: float, column: str) -> bool:
        return bool(first[column] <= value <= last[column])

    assert between(got["postgres_transactions_total"][(*shop, "commit")], "xact_commit")
    assert got["postgres_transactions_total"][(*shop, "commit")] - before["xact_commit"] >= 8
    assert got["postgres_transactions_total"][(*shop, "rollback")] - before["xact_rollback"] == 2
    assert between(got["cache_requests_total"][("main-db/shop", "", "hit")], "blks_hit")
    assert between(got["cache_requests_total"][("main-db/shop", "", "miss")], "blks_read")
    assert got["postgres_temp_files_total"][shop] == last["temp_files"] >= 1  # only our sort spills
    assert got["postgres_temp_bytes_total"][shop] == last["temp_bytes"] > 0
    assert got["postgres_deadlocks_total"][shop] == 0
    assert got["postgres_conflicts_total"][shop] == 0
    assert got["postgres_database_size_bytes"][shop] > 0
    assert got["postgres_database_frozen_xid_age"][shop] > 0
    assert {labels[1] for labels in got["postgres_database_size_bytes"]} >= {"postgres", "shop", "blog"}
    assert not {"template0", "template1"} & {labels[1] for labels in got["postgres_database_size_bytes"]}


def test_a_deadlock_is_counted_in_its_database(postgres_server: PostgresServer) -> None:
    fresh_database(postgres_server, "shop")
    with postgres_server.connect("shop") as conn:
        conn.execute("CREATE TABLE t (k int PRIMARY KEY, v int)")
        conn.execute("INSERT INTO t VALUES (1, 0), (2, 0)")
    one, two = postgres_server.connect("shop"), postgres_server.connect("shop")
    errors: list[BaseException] = []
    try:
        for conn in (one, two):
            conn.execute("BEGIN")
        one.execute("UPDATE t SET v = 1 WHERE k = 1")
        two.execute("UPDATE t SET v = 1 WHERE k = 2")

        def cross(conn: Any, key: int) -> None:
            try:
                conn.execute("UPDATE t SET v = 2 WHERE k = %s", (key,))
            except Exception as err:  # one of the two is chosen as the victim
                errors.append(err)

        threads = [threading.Thread(target=cross, args=(one, 2)), threading.Thread(target=cross, args=(two, 1))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        one.close()
        two.close()
    assert len(errors) == 1 and "deadlock detected" in str(errors[0])
    wait_for_stats(postgres_server, "shop", lambda s: s["deadlocks"] >= 1)
    got = collect_values(postgres_server.dsn(), statements=0)
    assert got["postgres_deadlocks_total"][("main-db", "shop")] == 1


def test_sessions_per_database_as_pools_against_their_limits(postgres_server: PostgresServer) -> None:
    fresh_database(postgres_server, "shop")
    fresh_database(postgres_server, "blog")
    with postgres_server.connect() as conn:
        conn.execute("ALTER DATABASE blog CONNECTION LIMIT 5")
    idle = [postgres_server.connect("shop", application_name="t-depth") for _ in range(2)]
    in_tx = postgres_server.connect("blog", application_name="t-depth")
    try:
        in_tx.execute("BEGIN")
        in_tx.execute("SELECT 1")
        with postgres_server.connect(application_name="t-poll") as poller:
            wait_for_states(poller, "t-depth", idle=2, idle_in_transaction=1)
        got = collect_values(postgres_server.dsn(), statements=0)
    finally:
        for conn in [*idle, in_tx]:
            conn.close()
    pools = got["pool_connections"]
    assert pools[("main-db/shop", "idle")] == 2 and pools[("main-db/shop", "active")] == 0
    assert pools[("main-db/blog", "idle_in_transaction")] == 1
    assert pools[("main-db/postgres", "active")] >= 1  # the probe itself
    assert got["pool_max_connections"][("main-db/blog",)] == 5
    assert got["pool_max_connections"][("main-db/shop",)] == 50  # no limit of its own: max_connections
    assert got["pool_max_connections"][("main-db",)] == 50


def test_oldest_transaction_idle_in_transaction_and_locks(postgres_server: PostgresServer) -> None:
    fresh_database(postgres_server, "shop")
    with postgres_server.connect("shop") as conn:
        conn.execute("CREATE TABLE t (k int)")
    holder = postgres_server.connect("shop", application_name="t-holder")
    waiter = postgres_server.connect("shop", application_name="t-waiter")
    try:
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE t IN SHARE MODE")
        pid = holder.info.backend_pid
        waiter.execute("BEGIN")
        blocked = threading.Thread(target=lambda: waiter.execute("LOCK TABLE t IN EXCLUSIVE MODE"))
        blocked.start()
        with postgres_server.connect() as poll:
            deadline = time.monotonic() + 15
            while not poll.execute("SELECT 1 FROM pg_locks WHERE NOT granted AND mode = 'ExclusiveLock'").fetchone():
                assert time.monotonic() < deadline, "the second LOCK never waited"
                time.sleep(0.02)
            age = "SELECT extract(epoch FROM now() - {}) FROM pg_stat_activity WHERE pid = %s"
            # now() is the start of the poller's own statement: read before and after the probe.
            xact_before = float(poll.execute(age.format("xact_start"), (pid,)).fetchone()[0])
            idle_before = float(poll.execute(age.format("state_change"), (pid,)).fetchone()[0])
            got = collect_values(postgres_server.dsn(), statements=0)
            xact_after = float(poll.execute(age.format("xact_start"), (pid,)).fetchone()[0])
        holder.execute("ROLLBACK")
        blocked.join()
        waiter.execute("ROLLBACK")
    finally:
        holder.close()
        waiter.close()
    assert xact_before <= got["postgres_oldest_transaction_age_seconds"][("main-db",)] <= xact_after
    assert idle_before <= got["postgres_oldest_idle_in_transaction_seconds"][("main-db",)] <= xact_after
    locks = got["postgres_locks"]
    assert locks[("main-db", "ShareLock", "granted")] >= 1
    assert locks[("main-db", "ExclusiveLock", "waiting")] == 1


def test_checkpoints_and_the_background_writer(postgres_server: PostgresServer) -> None:
    before = collect_values(postgres_server.dsn(), statements=0)
    with postgres_server.connect() as conn:
        conn.execute("CHECKPOINT")
    after = collect_values(postgres_server.dsn(), statements=0)
    key = ("main-db", "requested")
    assert after["postgres_checkpoints_total"][key] - before["postgres_checkpoints_total"][key] >= 1
    assert set(after["postgres_checkpoint_seconds_total"]) == {("main-db", "write"), ("main-db", "sync")}
    assert set(after["postgres_buffers_written_total"]) == {
        ("main-db", "checkpointer"), ("main-db", "bgwriter"), ("main-db", "backend")}
    assert after["postgres_buffers_allocated_total"][("main-db",)] > 0


def test_the_biggest_tables_with_their_vacuum_and_analyze_history(postgres_server: PostgresServer) -> None:
    fresh_database(postgres_server, "shop")
    with postgres_server.connect("shop") as conn:
        for name, rows in (("big", 20000), ("middle", 5000), ("small", 10)):
            # Autovacuum off on these tables: the test decides when each is vacuumed.
            conn.execute(f"CREATE TABLE {name} (k int, pad text) WITH (autovacuum_enabled = off)")
            conn.execute(f"INSERT INTO {name} SELECT g, repeat('x', 50) FROM generate_series(1, {rows}) g")
        conn.execute("DELETE FROM big WHERE k <= 1000")
        conn.execute("VACUUM middle")
        conn.execute("ANALYZE big")
        sizes = dict(conn.execute("SELECT relname, pg_total_relation_size(oid) FROM pg_class "
                                  "WHERE relname IN ('big', 'middle')").fetchall())
    with postgres_server.connect("shop") as conn:  # the VACUUM's stats reach the view once that session ends
        deadline = time.monotonic() + 15
        while conn.execute("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'middle'").fetchone()[0] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    got = collect_values(postgres_server.dsn("shop"), statements=0, tables=2)
    big, middle = ("main-db", "shop", "public", "big"), ("main-db", "shop", "public", "middle")
    assert set(got["postgres_table_size_bytes"]) == {big, middle}  # the biggest two of three
    assert got["postgres_table_size_bytes"][big] == sizes["big"]
    assert got["postgres_table_size_bytes"][middle] == sizes["middle"]
    assert got["postgres_table_vacuums_total"] == {big: 0, middle: 1}
    assert got["postgres_table_analyzes_total"][big] == 1
    assert set(got["postgres_table_vacuum_age_seconds"]) == {middle}  # big was never vacuumed
    assert got["postgres_table_vacuum_age_seconds"][middle] >= 0
    assert set(got["postgres_table_analyze_age_seconds"]) >= {big}
    with postgres_server.connect("shop") as conn:  # autovacuum is off here: the estimates hold still
        live, dead = conn.execute("SELECT n_live_tup, n_dead_tup FROM pg_stat_user_tables "
                                  "WHERE relname = 'big'").fetchone()
    assert got["postgres_table_live_tuples"][big] == live > 0
    assert got["postgres_table_dead_tuples"][big] == dead > 0
    assert got["postgres_table_frozen_xid_age"][big] > 0


def test_server_false_keeps_the_server_pool_and_statements_only(postgres_server: PostgresServer) -> None:
    got = collect_values(postgres_server.dsn(), statements=0, server=False)
    assert set(got) == {"pool_connections", "pool_max_connections"}
    assert set(got["pool_max_connections"]) == {("main-db",)}


# --- replication: a replica made by pg_basebackup, streaming from the session's server ----------

def test_replication_lag_from_both_sides(postgres_server: PostgresServer,
                                         postgres_replica: PostgresReplicaServer) -> None:
    postgres_replica.wait_replayed()
    primary = collect_values(postgres_server.dsn(), statements=0)
    replica = collect_values(postgres_replica.dsn(), statements=0)
    name = ("main-db", PostgresReplicaServer.application_name)
    assert primary["postgres_in_recovery"] == {("main-db",): 0}
    assert primary["postgres_replica_lag_bytes"] == {name: 0}
    assert name in primary["postgres_replica_lag_seconds"]
    assert replica["postgres_in_recovery"] == {("main-db",): 1}
    assert replica["postgres_wal_receiver_up"] == {("main-db",): 1}
    assert replica["postgres_replay_lag_bytes"] == {("main-db",): 0}
    assert replica["postgres_replay_lag_seconds"] == {("main-db",): 0}
    assert "postgres_replica_lag_bytes" not in replica or replica["postgres_replica_lag_bytes"] == {}


def test_a_paused_replay_shows_lag_in_bytes_and_seconds(postgres_server: PostgresServer,
                                                        postgres_replica: PostgresReplicaServer) -> None:
    with postgres_server.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS lagging")
        conn.execute("CREATE TABLE IF NOT EXISTS replayed (k int)")
        conn.execute("INSERT INTO replayed VALUES (1)")  # a commit the replica replays before the pause
    postgres_replica.wait_replayed()
    with postgres_replica.connect() as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            with postgres_server.connect() as conn:
                conn.execute("CREATE TABLE lagging AS SELECT g FROM generate_series(1, 10000) g")
                written = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
            deadline = time.monotonic() + 15
            while not standby.execute("SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn", (written,)).fetchone()[0]:
                assert time.monotonic() < deadline, "the replica never received the WAL"
                time.sleep(0.05)
            time.sleep(0.01)
            replica = collect_values(postgres_replica.dsn(), statements=0)
            primary = collect_values(postgres_server.dsn(), statements=0)
            unreplayed = float(standby.execute(
                "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())").fetchone()[0])
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")
    assert replica["postgres_replay_lag_bytes"][("main-db",)] == unreplayed > 100_000  # the table's WAL
    assert replica["postgres_replay_lag_seconds"][("main-db",)] > 0
    assert primary["postgres_replica_lag_bytes"][("main-db", PostgresReplicaServer.application_name)] >= unreplayed
    postgres_replica.wait_replayed()
