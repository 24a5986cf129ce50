"""The PgBouncer probe's own PostgreSQL-protocol client against a real PgBouncer: pipelining, auth, TLS."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from exporter.collectors import ProbeError
from exporter.collectors.pgbouncer import Config, PgBouncerCollector
from exporter.collectors.pgwire import Connection, PgError, Result, parse_dsn
from tests.collectors.helpers import collect_once, run
from tests.support.servers import (
    PgBouncerServer,
    PostgresServer,
    _own,
    running,
    workdir,
)
from tests.support.tls import PKI, make_pki

PASSWORD = "s3cret-Pw:x"


async def pipelined(dsn: str, statements: list[str]) -> list[Result]:
    conn = await Connection.open(parse_dsn(dsn))
    try:
        return await conn.pipeline(statements)
    finally:
        await conn.close()


def test_each_pipelined_answer_belongs_to_its_statement(pgbouncer_server: PgBouncerServer) -> None:
    """Nine SHOWs in one write, answered in order: each answer must be its own statement's
    (columns and rows as psycopg reads them one at a time), CLIENTS and SERVERS, whose
    columns are the same, told apart by their rows' type."""
    statements = ["SHOW SERVERS", "SHOW CLIENTS", "SHOW LISTS", "SHOW MEM", "SHOW POOLS", "SHOW STATS",
                  "SHOW DATABASES", "SHOW CONFIG", "SHOW LISTS"]
    with pgbouncer_server.connect() as held:
        held.execute("SELECT 1")  # one client of `app` with a server linked to it
        got = run(lambda: pipelined(pgbouncer_server.dsn("pgbouncer"), statements))
        with pgbouncer_server.connect("pgbouncer") as admin:
            expected = {}
            for statement in set(statements):
                cursor = admin.execute(statement)
                expected[statement] = ([c.name for c in cursor.description or []], cursor.fetchall())
    assert [r.statement for r in got] == statements
    for result in got:
        names, rows = expected[result.statement]
        assert result.names == names, result.statement
        if result.statement in ("SHOW LISTS", "SHOW MEM", "SHOW DATABASES", "SHOW CONFIG"):
            assert [r[names[0]] for r in result.rows()] == [str(row[0]) for row in rows], result.statement
    servers, clients = (r.rows() for r in got[:2])
    assert servers and {r["type"] for r in servers} == {"S"}
    assert {r["type"] for r in clients} == {"C"}
    assert {r["database"] for r in clients} == {"app", "pgbouncer"}
    config = got[7]
    assert config.find("max_client_conn") == {"key": "max_client_conn", "value": "200", **{
        k: v for k, v in (config.find("max_client_conn") or {}).items() if k not in ("key", "value")}}
    assert config.find("no_such_setting") is None
    assert got[4].rows(("database", "cl_active"))[0].keys() == {"database", "cl_active"}


def test_a_failing_statement_is_named_and_the_connection_stays_in_step(pgbouncer_server: PgBouncerServer) -> None:
    async def main() -> tuple[str, list[Result]]:
        conn = await Connection.open(parse_dsn(pgbouncer_server.dsn("pgbouncer")))
        try:
            with pytest.raises(PgError) as err:
                await conn.pipeline(["SHOW LISTS", "SHOW NO_SUCH_THING", "SHOW MEM"])
            return str(err.value), await conn.pipeline(["SHOW VERSION", "SHOW LISTS"])
        finally:
            await conn.close()

    message, after = run(main)
    assert message.startswith("SHOW NO_SUCH_THING: ERROR")
    assert [r.statement for r in after] == ["SHOW VERSION", "SHOW LISTS"]
    assert after[0].rows()[0]["version"].startswith("PgBouncer")  # type: ignore[union-attr]
    assert after[1].names == ["list", "items"]


class AuthBouncer(PgBouncerServer):
    """PgBouncer asking for passwords by user (scram-sha-256 over TLS only, md5, cleartext), TLS offered."""

    def __init__(self, workdir: Path, postgres: PostgresServer, pki: PKI) -> None:
        self.pki = pki
        super().__init__(workdir, postgres)

    def _write_config(self) -> None:
        users = ("scram", "md5", "plain")
        (self.workdir / "hba.conf").write_text(
            "hostssl pgbouncer scram 127.0.0.1/32 scram-sha-256\n"
            "host pgbouncer md5 127.0.0.1/32 md5\n"
            "host pgbouncer plain 127.0.0.1/32 password\n")
        super()._write_config()
        (self.workdir / "users.txt").write_text("".join(f'"{u}" "{PASSWORD}"\n' for u in users))
        ini = self.workdir / "pgbouncer.ini"
        ini.write_text(ini.read_text().replace("auth_type = trust", f"""\
auth_type = hba
auth_hba_file = {self.workdir / "hba.conf"}
client_tls_sslmode = allow
client_tls_cert_file = {self.pki.server.cert}
client_tls_key_file = {self.pki.server.key}""").replace("stats_users = postgres", f"stats_users = {', '.join(users)}"))
        _own(self.workdir, self.user())


@pytest.fixture(scope="module")
def auth_bouncer(_postgres_session: PostgresServer) -> Iterator[AuthBouncer]:
    _postgres_session.start()
    directory = workdir("pgbouncer-auth")
    pki = make_pki(directory / "pki")  # made readable by PgBouncer's user with the rest of its directory
    with running(AuthBouncer(directory, _postgres_session, pki)) as server:
        yield server  # type: ignore[misc]


@pytest.mark.parametrize("user, query", [
    ("scram", "sslmode=verify-full&sslrootcert={ca}"),  # SCRAM-SHA-256, and the server's name checked
    ("md5", "sslmode=disable"),
    ("plain", "sslmode=disable"),
])
def test_each_password_method_reads_the_pooler(auth_bouncer: AuthBouncer, user: str, query: str) -> None:
    dsn = (f"postgresql://{user}:{PASSWORD.replace(':', '%3A')}@127.0.0.1:{auth_bouncer.port}/pgbouncer?"
           + query.format(ca=auth_bouncer.pki.ca.cert))
    got = run(lambda: collect_once(PgBouncerCollector(Config.model_validate({"name": "b", "dsn": dsn}))))
    assert got["pgbouncer_list_items"][("b", "used_clients")] >= 1
    assert ("b/app", "active") in got["pool_clients"]


def test_a_wrong_password_is_refused_without_quoting_it(auth_bouncer: AuthBouncer) -> None:
    dsn = f"postgresql://md5:Wr0ng-secret@127.0.0.1:{auth_bouncer.port}/pgbouncer?sslmode=disable"
    probe = PgBouncerCollector(Config.model_validate({"name": "b", "dsn": dsn}))
    with pytest.raises(PgError) as err:
        run(probe.collect)
    assert "password authentication failed" in str(err.value)
    assert "Wr0ng-secret" not in str(err.value)


def test_tls_the_dsn_requires_but_the_server_does_not_offer_is_an_error(pgbouncer_server: PgBouncerServer) -> None:
    dsn = pgbouncer_server.dsn("pgbouncer") + "?sslmode=require"
    with pytest.raises(ProbeError, match="does not offer TLS"):
        run(lambda: asyncio.wait_for(Connection.open(parse_dsn(dsn)), 10))


def test_a_dsn_key_the_probe_cannot_honour_is_refused_when_the_config_is_read() -> None:
    with pytest.raises(ValidationError, match="target_session_attrs"):
        Config.model_validate({"name": "b", "dsn": "host=127.0.0.1 port=6432 target_session_attrs=any"})
    endpoint = parse_dsn("host=/run/pgbouncer port=6432 user=stats password='a b\\'c' dbname=pgbouncer")
    assert (endpoint.socket, endpoint.password, endpoint.tcp()) == ("/run/pgbouncer/.s.PGSQL.6432", "a b'c", None)


def test_the_password_file_and_the_environment_fill_what_the_dsn_leaves_out(
        auth_bouncer: AuthBouncer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"# comment\n127.0.0.1:{auth_bouncer.port}:pgbouncer:md5:{PASSWORD.replace(':', chr(92) + ':')}\n")
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    monkeypatch.setenv("PGUSER", "md5")
    monkeypatch.setenv("PGSSLMODE", "disable")
    dsn = f"host=127.0.0.1 port={auth_bouncer.port} dbname=pgbouncer"
    got = run(lambda: collect_once(PgBouncerCollector(Config.model_validate({"name": "b", "dsn": dsn}))))
    assert got["pgbouncer_list_items"][("b", "used_clients")] >= 1
