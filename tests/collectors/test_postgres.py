"""PostgreSQL probe against a real PostgreSQL 15 with pg_stat_statements."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from exporter.collectors import ProbeError
from exporter.collectors.postgres import Config, PostgresCollector, query_label
from tests.collectors.helpers import framed, run, values
from tests.support.servers import BlackHole, PostgresServer


def collector(dsn: str, **extra: object) -> PostgresCollector:
    return PostgresCollector(Config.model_validate({"name": "main-db", "dsn": dsn, **extra}))


def wait_for_states(conn: Any, app: str, **want: int) -> None:
    """Poll on a connection the test keeps open (and idle) across both reads: closing one
    here would race the probe's count with the backend's exit."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rows = dict(conn.execute(
            "SELECT state, count(*) FROM pg_stat_activity WHERE application_name = %s GROUP BY 1",
            (app,)).fetchall())
        if all(rows.get(k.replace("_", " "), 0) == v for k, v in want.items()):
            return
        time.sleep(0.05)


def test_connections_by_state_against_max_connections(postgres_server: PostgresServer) -> None:
    async def main() -> tuple[dict, dict]:
        probe = collector(postgres_server.dsn(), statements=0)
        poller = postgres_server.connect(application_name="t-poll")
        try:
            before = values(await probe.collect())
            idle = [postgres_server.connect(application_name="t-idle") for _ in range(3)]
            in_tx = postgres_server.connect(application_name="t-idle")
            in_tx.execute("BEGIN")
            in_tx.execute("SELECT 1")
            sleepers = [threading.Thread(target=lambda: postgres_server.connect(
                application_name="t-idle").execute("SELECT pg_sleep(1.5)")) for _ in range(2)]
            for thread in sleepers:
                thread.start()
            try:
                wait_for_states(poller, "t-idle", active=2, idle=3, idle_in_transaction=1)
                after = values(await probe.collect())
            finally:
                for thread in sleepers:
                    thread.join()
                for conn in [*idle, in_tx]:
                    conn.close()
            return before, after
        finally:
            poller.close()
            await probe.close()

    before, after = run(main)
    conns = lambda got, state: got["pool_connections"].get(("main-db", state), 0)  # noqa: E731
    assert conns(after, "active") - conns(before, "active") == 2
    assert conns(after, "idle") - conns(before, "idle") == 3
    assert conns(after, "idle_in_transaction") - conns(before, "idle_in_transaction") == 1
    assert conns(before, "active") >= 1  # the probe's own query
    assert after["pool_max_connections"] == {("main-db",): 50}
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
    after it must pair up, the slowest three and no other."""
    with postgres_server.connect() as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        for k in range(12):
            # k extra columns make k distinct statements (pg_stat_statements ignores aliases).
            conn.execute(f"SELECT pg_sleep({0.02 * (k + 1)}), '{'x' * 2000}'" + ", 0" * k)
        rows = conn.execute(
            "SELECT queryid::text, query, total_exec_time FROM pg_stat_statements "
            "WHERE query LIKE 'SELECT pg_sleep(%' ORDER BY total_exec_time DESC LIMIT 3").fetchall()

    async def main() -> dict:
        probe = collector(postgres_server.dsn(), statements=3)
        try:
            return values(await probe.collect())
        finally:
            await probe.close()

    got = run(main)["postgres_statement_seconds_total"]
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
