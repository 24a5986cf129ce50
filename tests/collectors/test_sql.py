"""SQL probes on a real SQLite file and a real PostgreSQL 15: latency, rows, errors, metrics, EXPLAIN."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from exporter.backoff import BackoffError
from exporter.collectors import ProbeError
from exporter.collectors.sql import Config, SQLCollector, postgres_full_scans, sqlite_full_scans
from tests.collectors.helpers import framed, run, values
from tests.support.servers import PostgresServer

FOREVER = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


def collector(dsn: str, queries: list[dict[str, Any]], **extra: object) -> SQLCollector:
    return SQLCollector(Config.model_validate({"name": "shop", "dsn": dsn, "queries": queries, **extra}))


@pytest.fixture
def shop_db(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT, amount REAL)")
        rows = [(i, ("new", "paid", "shipped")[i % 3], float(i)) for i in range(1, 11)]
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?)", rows)
    return path


def count(got: dict, operation: str, outcome: str) -> float:
    return got["operation_duration_seconds"][(operation, outcome)].count


def test_sqlite_queries_metrics_errors_and_plans(shop_db: Path) -> None:
    queries = [
        {"name": "by_status", "explain": True,
         "sql": "SELECT status, count(*) AS n, sum(amount) AS total FROM orders GROUP BY status",
         "metrics": [{"name": "shop_orders", "value": "n", "labels": ["status"]},
                     {"name": "shop_order_amount", "value": "total", "labels": ["status"], "help": "Sum."}]},
        {"name": "one_order", "explain": True, "sql": "SELECT amount FROM orders WHERE id = 5",
         "metrics": [{"name": "shop_order_5_amount", "value": "amount"}]},
        {"name": "broken", "sql": "SELECT * FROM no_such_table"},
        {"name": "hourly", "interval": "1h", "sql": "SELECT 1 AS one"},
        {"name": "always_slow", "slow_threshold": "1ms", "sql": FOREVER.replace("count(*) FROM c",
                                                                              "count(*) FROM c WHERE x > 0")
         + " LIMIT 1", "timeout": "100ms"},
    ]

    async def main() -> dict:
        probe = collector(f"sqlite://{shop_db}", queries, slow_threshold="1h")
        try:
            await probe.collect()
            return values(await probe.collect())
        finally:
            await probe.close()

    got = run(main)
    # Orders 1..10 by id % 3: new = 3, 6, 9; paid = 1, 4, 7, 10; shipped = 2, 5, 8.
    assert got["shop_orders"] == {("new",): 3, ("paid",): 4, ("shipped",): 3}
    assert got["shop_order_amount"] == {("new",): 18.0, ("paid",): 22.0, ("shipped",): 15.0}
    assert got["shop_order_5_amount"] == {(): 5.0}
    assert got["sql_query_rows"] == {("by_status",): 3, ("one_order",): 1, ("hourly",): 1}
    assert count(got, "by_status", "ok") == 2 and count(got, "by_status", "error") == 0
    assert count(got, "hourly", "ok") == 1  # the second collect reused its result
    assert count(got, "broken", "error") == 2 and count(got, "broken", "ok") == 0
    assert count(got, "always_slow", "error") == 2  # timed out twice
    assert got["sql_query_errors_total"] == {("by_status",): 0, ("one_order",): 0, ("broken",): 2,
                                             ("hourly",): 0, ("always_slow",): 2}
    assert got["sql_slow_queries_total"] == {("by_status",): 0, ("one_order",): 0, ("broken",): 0,
                                             ("hourly",): 0, ("always_slow",): 2}
    # GROUP BY status reads every row; a primary-key lookup does not.
    assert got["sql_query_full_scan"] == {("by_status", "orders"): 1, ("one_order", "orders"): 0}


def test_an_index_turns_the_full_scan_gauge_off(shop_db: Path) -> None:
    query = [{"name": "paid", "explain": True, "sql": "SELECT count(*) FROM orders WHERE status = 'paid'"}]

    async def scan() -> dict:
        probe = collector(f"sqlite://{shop_db}", query)
        try:
            return values(await probe.collect())["sql_query_full_scan"]
        finally:
            await probe.close()

    assert run(scan) == {("paid", "orders"): 1}
    with sqlite3.connect(shop_db) as conn:
        conn.execute("CREATE INDEX orders_status ON orders (status)")
    assert run(scan) == {("paid", "orders"): 0}


def test_the_same_running_probe_sees_an_index_added_after_it_connected(shop_db: Path) -> None:
    query = [{"name": "paid", "explain": True, "sql": "SELECT count(*) FROM orders WHERE status = 'paid'"}]

    async def main() -> tuple[dict, dict]:
        probe = collector(f"sqlite://{shop_db}", query)
        try:
            before = values(await probe.collect())["sql_query_full_scan"]
            with sqlite3.connect(shop_db) as conn:
                conn.execute("CREATE INDEX orders_status ON orders (status)")
            return before, values(await probe.collect())["sql_query_full_scan"]
        finally:
            await probe.close()

    before, after = run(main)
    assert before == {("paid", "orders"): 1} and after == {("paid", "orders"): 0}


def test_a_runaway_sqlite_query_stops_at_its_timeout_and_leaves_no_thread(shop_db: Path) -> None:
    async def main() -> None:
        probe = collector(f"sqlite://{shop_db}", [{"name": "forever", "sql": FOREVER}], timeout="200ms")
        try:
            got = values(await asyncio.wait_for(probe.collect(), timeout=10))
            assert got["sql_query_errors_total"] == {("forever",): 1}
            # Cancelled from outside (the scraper's wait_for) long before its own 30s timeout.
            slow = collector(f"sqlite://{shop_db}", [{"name": "forever", "sql": FOREVER}], timeout="30s")
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(framed(slow).attempt(), timeout=0.3)
            await slow.close()
        finally:
            await probe.close()

    run(main)  # fails if a worker thread were still running the query


def test_a_missing_or_bad_database_fails_the_collect(tmp_path: Path) -> None:
    (tmp_path / "not.db").write_text("this is not a database file, it is text " * 100)

    async def main() -> None:
        job = framed(collector(f"sqlite://{tmp_path / 'absent.db'}", [{"name": "q", "sql": "SELECT 1"}]))
        with pytest.raises(ProbeError, match="unable to open"):
            await job.attempt()
        with pytest.raises(BackoffError):
            await job.attempt()
        job = framed(collector(f"sqlite://{tmp_path / 'not.db'}", [{"name": "q", "sql": "SELECT 1"}]))
        with pytest.raises(ProbeError, match="not a database"):
            await job.attempt()

    run(main)


def test_a_column_that_does_not_fit_is_a_counted_query_error(shop_db: Path) -> None:
    queries = [{"name": "q", "sql": "SELECT status FROM orders",
                "metrics": [{"name": "m", "value": "status"}]},
               {"name": "r", "sql": "SELECT amount FROM orders", "metrics": [{"name": "n", "value": "nope"}]}]

    async def main() -> dict:
        probe = collector(f"sqlite://{shop_db}", queries)
        try:
            return values(await probe.collect())
        finally:
            await probe.close()

    got = run(main)
    assert got["sql_query_errors_total"] == {("q",): 1, ("r",): 1}
    assert "m" not in got and "n" not in got and "sql_query_rows" not in got


def test_config_is_checked_up_front() -> None:
    with pytest.raises(ValidationError, match="unique"):
        Config.model_validate({"name": "x", "dsn": "sqlite:///x.db",
                               "queries": [{"name": "a", "sql": "SELECT 1"}, {"name": "a", "sql": "SELECT 2"}]})
    with pytest.raises(ValidationError, match="dsn"):
        Config.model_validate({"name": "x", "dsn": "mysql://db", "queries": [{"name": "a", "sql": "SELECT 1"}]})
    with pytest.raises(ValidationError, match="defined by queries"):
        Config.model_validate({"name": "x", "dsn": "sqlite:///x.db", "queries": [
            {"name": "a", "sql": "SELECT 1 AS v", "metrics": [{"name": "m", "value": "v"}]},
            {"name": "b", "sql": "SELECT 1 AS v", "metrics": [{"name": "m", "value": "v"}]}]})


def test_plan_parsers() -> None:
    assert sqlite_full_scans(["SCAN orders", "SEARCH customers USING INDEX c_id (id=?)",
                              "SCAN CONSTANT ROW", "SCAN items AS i USING COVERING INDEX items_k",
                              "SCAN TABLE legacy"]) == {"orders": True, "customers": False, "items": False,
                                                        "legacy": True}
    plan = {"Node Type": "Nested Loop", "Plans": [
        {"Node Type": "Seq Scan", "Relation Name": "a"},
        {"Node Type": "Index Scan", "Relation Name": "b"}]}
    assert postgres_full_scans(plan) == {"a": True, "b": False}


# --- PostgreSQL ------------------------------------------------------------------------------

@pytest.fixture
def items(postgres_server: PostgresServer) -> PostgresServer:
    with postgres_server.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS items")
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, kind text, price numeric)")
        conn.execute("INSERT INTO items SELECT i, (ARRAY['a','b','c','d'])[i % 4 + 1], i FROM generate_series(1, 20000) i")
        conn.execute("ANALYZE items")
    return postgres_server


def test_postgres_queries_metrics_errors_and_plans(items: PostgresServer) -> None:
    queries = [
        {"name": "kinds", "explain": True, "sql": "SELECT kind, count(*) AS n FROM items GROUP BY kind",
         "metrics": [{"name": "shop_items", "value": "n", "labels": ["kind"]}]},
        {"name": "price_of_42", "explain": True, "sql": "SELECT price FROM items WHERE id = 42",
         "metrics": [{"name": "shop_price_42", "value": "price"}]},
        {"name": "sleepy", "sql": "SELECT pg_sleep(5)", "timeout": "200ms"},
        {"name": "typo", "sql": "SELEC 1"},
    ]

    async def main() -> dict:
        probe = collector(items.dsn(password=items.password), queries)
        try:
            await probe.collect()
            return values(await probe.collect())
        finally:
            await probe.close()

    got = run(main)
    assert got["shop_items"] == {("a",): 5000, ("b",): 5000, ("c",): 5000, ("d",): 5000}
    assert got["shop_price_42"] == {(): 42.0}
    assert got["sql_query_rows"] == {("kinds",): 4, ("price_of_42",): 1}
    assert got["sql_query_errors_total"] == {("kinds",): 0, ("price_of_42",): 0, ("sleepy",): 2, ("typo",): 2}
    assert count(got, "kinds", "ok") == 2 and count(got, "sleepy", "error") == 2
    # The queries after the timed-out one ran on the same connection: psycopg cancelled pg_sleep.
    assert count(got, "typo", "error") == 2
    assert got["sql_query_full_scan"] == {("kinds", "items"): 1, ("price_of_42", "items"): 0}
