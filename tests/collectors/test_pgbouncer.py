"""PgBouncer probe against a real PgBouncer in front of a real PostgreSQL 15."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from exporter.collectors import ProbeError
from exporter.collectors.pgbouncer import Config, PgBouncerCollector
from tests.collectors.helpers import collect_once, framed, run, values
from tests.support.servers import BlackHole, PgBouncerServer


def collector(dsn: str, **extra: object) -> PgBouncerCollector:
    return PgBouncerCollector(Config.model_validate({"name": "bouncer", "dsn": dsn, **extra}))


def wait_for_pool(server: PgBouncerServer, **want: int) -> None:
    """Return once the `app` pool's SHOW POOLS row has every `want` value; fail after a generous
    deadline (a loaded machine is slow, never that slow)."""
    deadline = time.monotonic() + 30
    while True:
        row = next((r for r in server.show("POOLS") if r["database"] == "app"), {})
        if all(row.get(k) == v for k, v in want.items()):
            return
        assert time.monotonic() < deadline, f"pool never reached {want}: {row}"
        time.sleep(0.05)


def run_on_pool(server: PgBouncerServer, statement: str) -> None:
    with server.connect() as conn:
        conn.execute(statement)


def test_five_blocked_clients_on_a_pool_of_two(pgbouncer_server: PgBouncerServer) -> None:
    assert pgbouncer_server.pool_size == 2
    # The two clients that get a server wait on a lock the test holds until the collect is done
    # (a fixed pg_sleep let them finish first when the probe was slow), the other three queue.
    sleepers: list[threading.Thread] = []
    try:
        with pgbouncer_server.postgres.lock_held() as blocked:
            sleepers += [threading.Thread(target=run_on_pool, args=(pgbouncer_server, blocked)) for _ in range(5)]
            began = time.monotonic()
            for thread in sleepers:
                thread.start()
            # The pool passes through 2 active / 3 waiting while it is still logging in its
            # servers (seen: 2/3, then 1/4 with one server in login): first both servers busy
            # on the lock in PostgreSQL, then the pool settled; from there nothing moves.
            pgbouncer_server.postgres.wait_for_lock_waiters(2)
            wait_for_pool(pgbouncer_server, cl_active=2, cl_waiting=3, sv_active=2, sv_login=0)
            got = run(lambda: collect_once(collector(pgbouncer_server.dsn("pgbouncer"))))
            waited_at_most = time.monotonic() - began
    finally:
        for thread in sleepers:
            thread.join()

    pool = ("bouncer/app",)
    assert got["pool_clients"][(*pool, "active")] == 2
    assert got["pool_clients"][(*pool, "waiting")] == 3
    assert got["pool_pending_requests"] == {pool: 3}
    assert got["pool_connections"][(*pool, "active")] == 2
    assert got["pool_max_connections"] == {pool: 2}
    # Three clients have been waiting since before the collect: the oldest wait is real and
    # no longer than the time since the first of them connected.
    assert 0 < got["pool_max_wait_seconds"][pool] <= waited_at_most
    # The admin console is not a pool of the application's.
    assert all(not labels[0].endswith("/pgbouncer") for labels in got["pool_connections"])


def test_an_idle_pool_and_the_query_counters(pgbouncer_server: PgBouncerServer) -> None:
    run_on_pool(pgbouncer_server, "SELECT 1")
    # After its client leaves, the server connection runs server_reset_query (sv_tested, the
    # probe's "opening") before it is idle: wait for idle, not only for "not active".
    wait_for_pool(pgbouncer_server, cl_active=0, cl_waiting=0, sv_active=0, sv_tested=0, sv_login=0)

    got = run(lambda: collect_once(collector(pgbouncer_server.dsn("pgbouncer"))))
    stats = next(r for r in pgbouncer_server.show("STATS") if r["database"] == "app")
    pool = ("bouncer/app",)
    assert got["pool_clients"] == {(*pool, "active"): 0, (*pool, "waiting"): 0}
    assert got["pool_connections"][(*pool, "active")] == 0
    assert got["pool_connections"][(*pool, "idle")] >= 1  # the server connection stays for reuse
    assert got["pool_max_wait_seconds"] == {pool: 0}
    assert got["pool_queries_total"][pool] == float(stats["total_query_count"]) >= 1
    assert got["pool_query_seconds_total"][pool] == float(stats["total_query_time"]) / 1e6


def test_a_silent_socket_times_out_and_the_password_stays_secret(black_hole: BlackHole) -> None:
    async def main() -> str:
        probe = collector(f"postgresql://stats:Pa55word-x@127.0.0.1:{black_hole.port}/pgbouncer", timeout="300ms")
        try:
            with pytest.raises(ProbeError) as err:
                await asyncio.wait_for(framed(probe).attempt(), timeout=10)
            return str(err.value)
        finally:
            await probe.close()

    message = run(main)
    assert "TimeoutError" in message
    assert "Pa55word-x" not in message
    assert "stats:<secret>@127.0.0.1" in message


def test_the_pooler_itself_clients_against_max_client_conn_lists_and_memory(
        pgbouncer_server: PgBouncerServer) -> None:
    held = [pgbouncer_server.connect(application_name=f"app-{i % 2}") for i in range(3)]
    try:
        for conn in held[:2]:  # the pool has two servers; the third client stays connected, unserved
            conn.execute("SELECT 1")
        got = run(lambda: collect_once(collector(pgbouncer_server.dsn("pgbouncer"))))
        lists = {r["list"]: r["items"] for r in pgbouncer_server.show("LISTS")}
        servers = pgbouncer_server.show("SERVERS")
    finally:
        for conn in held:
            conn.close()
    target = ("bouncer",)
    assert got["pgbouncer_max_client_connections"] == {target: 200}  # max_client_conn in the fixture's ini
    # The three held, the probe's admin connection, and the test's own SHOW LISTS connection at most.
    assert 4 <= got["pgbouncer_client_connections"][target] <= lists["used_clients"] + lists["login_clients"] + 1
    assert got["pgbouncer_application_clients"][("bouncer", "app", "app-0")] == 2
    assert got["pgbouncer_application_clients"][("bouncer", "app", "app-1")] == 1
    assert not [labels for labels in got["pgbouncer_application_clients"] if labels[1] == "pgbouncer"]
    assert {("bouncer", "used_clients"), ("bouncer", "free_servers"), ("bouncer", "pools")} <= set(
        got["pgbouncer_list_items"])
    assert got["pgbouncer_memory_bytes"][("bouncer", "client_cache")] > 0
    backend = f"127.0.0.1:{pgbouncer_server.postgres.port}"
    assert sum(n for (_, db, addr, _), n in got["pgbouncer_server_connections"].items()
               if db == "app" and addr == backend) == len([r for r in servers if r["database"] == "app"]) == 2


def test_max_client_conn_is_reread_after_config_every(pgbouncer_server: PgBouncerServer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """SHOW CONFIG is read on a new connection, then at most every CONFIG_EVERY: a SET shows after it."""
    from exporter.collectors import pgbouncer

    async def main() -> list[float]:
        probe = collector(pgbouncer_server.dsn("pgbouncer"))
        seen = []
        try:
            for step in ("first", "set", "due"):
                if step == "set":
                    with pgbouncer_server.connect("pgbouncer") as admin:
                        admin.execute("SET max_client_conn = 150")
                if step == "due":
                    monkeypatch.setattr(pgbouncer, "CONFIG_EVERY", 0.0)
                got = values(await probe.collect())
                seen.append(got["pgbouncer_max_client_connections"][("bouncer",)])
        finally:
            await probe.close()
        return seen

    try:
        assert run(main) == [200, 200, 150]
    finally:
        with pgbouncer_server.connect("pgbouncer") as admin:
            admin.execute("SET max_client_conn = 200")
