"""The PostgreSQL and SQL probes' own client against a real PostgreSQL, checked against psycopg
reading the same statements: decoded types, NULLs, an error mid-pipeline, cancel, version."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import pytest

from exporter.collectors.pgsession import PgSession, StatementTimeout
from exporter.collectors.pgtypes import decoder
from exporter.collectors.pgwire import PgError
from tests.collectors.helpers import run
from tests.support.servers import PostgresServer

# One column per type the probes' queries and users' SQL produce, with the edge values of each.
TYPED = """
SELECT 1::int2 AS i2, (-2147483648)::int4 AS i4, 9223372036854775807::int8 AS i8, 'pg_class'::regclass::oid AS oid,
       1.5::float4 AS f4, 0.1::float8 AS f8, 'NaN'::float8 AS nan, '-Infinity'::float8 AS ninf,
       123456789.000000001::numeric AS num, 'NaN'::numeric AS num_nan, 1e-20::numeric AS tiny,
       true AS yes, false AS no, count(*) AS n, sum(1)::numeric AS total,
       'a label ä'::text AS txt, 'x'::name AS nm, 'abc'::varchar(5) AS vc,
       '{"a": [1, 2.5, null]}'::json AS js, '{"b": true}'::jsonb AS jsb,
       '2024-02-29'::date AS d, '23:59:59.123456'::time AS t, '12:00:00+05:30'::timetz AS ttz,
       '2024-02-29 12:34:56.789'::timestamp AS ts, '2024-02-29 12:34:56.789+02'::timestamptz AS tstz,
       '1 year 2 mons 3 days 04:05:06.5'::interval AS iv, '-1 days +02:00:00'::interval AS iv_neg,
       '-00:00:01.25'::interval AS iv_short, now() - now() AS iv_zero,
       extract(epoch FROM '2 hours'::interval) AS epoch,
       '6b2b5a4e-4a3b-4f3a-9d5c-1d2e3f4a5b6c'::uuid AS id, '10.0.0.1'::inet AS ip,
       NULL::int AS null_int, NULL::bool AS null_bool, NULL::timestamptz AS null_ts, NULL AS null_text
FROM (SELECT 1) one
"""
# Read as psycopg reads them, and by the same str() a label takes.
AS_TEXT_FOR_PSYCOPG = {"id", "ip"}


def test_each_type_decodes_as_psycopg_reads_the_same_query(postgres_server: PostgresServer) -> None:
    from psycopg.rows import dict_row

    async def main() -> dict[str, Any]:
        session = PgSession(postgres_server.dsn(), 5.0)
        try:
            return (await session.query(TYPED))[0]
        finally:
            await session.drop()

    ours = run(main)
    with postgres_server.connect(row_factory=dict_row) as conn:
        theirs = conn.execute(TYPED).fetchone()
    assert theirs is not None and ours.keys() == theirs.keys()
    for name, expected in theirs.items():
        got = ours[name]
        if name in AS_TEXT_FOR_PSYCOPG:
            assert got == str(expected), name
            continue
        assert type(got) is type(expected), (name, got, expected)
        if name in ("nan", "num_nan"):
            assert math.isnan(got) and math.isnan(expected), name  # NaN is equal to nothing, itself included
        else:
            assert got == expected, (name, got, expected)
        assert str(got) == str(expected), name  # a label reads the same as it did with psycopg
    assert ours["null_int"] is None and ours["null_bool"] is None and ours["null_text"] is None


def test_a_value_a_decoder_cannot_read_stays_text() -> None:
    assert decoder(1184)("infinity") == "infinity"
    assert decoder(1082)("-infinity") == "-infinity"
    assert decoder(1186)("P1Y2M") == "P1Y2M"  # IntervalStyle iso_8601: not ours to read
    assert decoder(16)("f") is False
    assert decoder(25)("t") == "t"  # text is not a bool


def test_an_error_mid_pipeline_names_its_statement_and_the_others_still_run(postgres_server: PostgresServer) -> None:
    with postgres_server.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS pipeline_marks")
        conn.execute("CREATE TABLE pipeline_marks (n int)")

    async def main() -> tuple[PgError, list[list[dict[str, Any]]], bool]:
        session = PgSession(postgres_server.dsn(), 5.0)
        try:
            with pytest.raises(PgError) as err:
                await session.pipeline(["INSERT INTO pipeline_marks VALUES (1)", "SELECT 1 / 0 AS boom",
                                        "INSERT INTO pipeline_marks VALUES (3)"])
            alive = session.alive
            return err.value, await session.pipeline(["SELECT 7 AS seven", "SELECT NULL::int AS nothing"]), alive
        finally:
            await session.drop()

    error, after, alive = run(main)
    assert str(error) == "SELECT 1 / 0 AS boom: ERROR: division by zero"
    assert error.sqlstate == "22012"
    assert alive
    assert after == [[{"seven": 7}], [{"nothing": None}]]
    with postgres_server.connect() as conn:
        # Each simple query is its own transaction: the failure rolled back only itself.
        assert [r[0] for r in conn.execute("SELECT n FROM pipeline_marks ORDER BY n")] == [1, 3]


def test_a_statement_past_its_timeout_is_cancelled_on_the_server(postgres_server: PostgresServer) -> None:
    async def main() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        session = PgSession(postgres_server.dsn(), 5.0)
        try:
            with pytest.raises(StatementTimeout):
                await session.bounded("SELECT pg_sleep(30) AS slept", 0.2)
            assert session.alive
            # The same connection answers at once: the sleep is gone from the server, not waited out.
            running = await session.bounded(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'", 5.0)
            return running, await session.bounded("SELECT 1 AS one", 5.0)
        finally:
            await session.drop()

    running, one = run(main)
    assert running == [{"n": 0}]
    assert one == [{"one": 1}]


def test_the_server_version_is_psycopgs(postgres_server: PostgresServer) -> None:
    async def main() -> int:
        session = PgSession(postgres_server.dsn(), 5.0)
        try:
            await session.connection()
            return session.server_version
        finally:
            await session.drop()

    with postgres_server.connect() as conn:
        assert run(main) == conn.info.server_version


def test_the_postgres_and_sql_probes_do_not_load_psycopg(postgres_server: PostgresServer) -> None:
    # psycopg and psycopg-binary's libraries cost the daemon 7.2 MiB of RSS against a 40 MiB budget.
    code = f"""
import asyncio, sys
from exporter.collectors.postgres import Config, PostgresCollector
from exporter.collectors.sql import Config as SQLConfig, SQLCollector
async def main():
    probes = [PostgresCollector(Config(name="p", dsn={postgres_server.dsn()!r})),
              SQLCollector(SQLConfig.model_validate({{"name": "s", "dsn": {postgres_server.dsn()!r}, "queries": [
                  {{"name": "q", "sql": "SELECT true AS on, 2.5::numeric AS x",
                    "metrics": [{{"name": "q_on", "value": "on"}}, {{"name": "q_x", "value": "x"}}]}}]}}))]
    fams = [f for probe in probes for f in await probe.collect()]
    for probe in probes:
        await probe.close()
    return {{f.spec.name: [s.value for s in f.samples] for f in fams}}
got = asyncio.run(main())
assert got["q_on"] == [1.0] and got["q_x"] == [2.5], got
assert got["pool_max_connections"], got
print(sorted(m for m in sys.modules if m.split(".")[0] in ("psycopg", "psycopg_binary", "psycopg_pool")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_statements_are_prepared_once_and_parsed_again_when_they_must_be(postgres_server: PostgresServer) -> None:
    """A statement is planned once per session; one whose table changed under it, or that does not
    parse, is parsed again at its next run rather than failing for good (or with a stale name)."""
    with postgres_server.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS prepared_shape")
        conn.execute("CREATE TABLE prepared_shape (a int)")
        conn.execute("INSERT INTO prepared_shape VALUES (1)")
    select, typo = "SELECT * FROM prepared_shape", "SELEC 1"

    async def main() -> tuple[list[Any], list[str], list[Any], list[str]]:
        session = PgSession(postgres_server.dsn(), 5.0)
        try:
            first = await session.query(select)
            again = await session.query(select)
            names = [r["statement"] for r in await session.query(
                "SELECT statement FROM pg_prepared_statements ORDER BY statement")]
            with postgres_server.connect() as conn:
                conn.execute("ALTER TABLE prepared_shape ADD COLUMN b int DEFAULT 2")
            with pytest.raises(PgError) as stale:
                await session.query(select)
            after = await session.query(select)
            typos = []
            for _ in range(2):
                with pytest.raises(PgError) as err:
                    await session.query(typo)
                typos.append(str(err.value))
            return [first, again, after], names, [stale.value.sqlstate], typos
        finally:
            await session.drop()

    (first, again, after), names, stale, typos = run(main)
    assert first == again == [{"a": 1}]
    assert select in names
    assert stale == ["0A000"]  # cached plan must not change result type
    assert after == [{"a": 1, "b": 2}]
    assert typos == ['SELEC 1: ERROR: syntax error at or near "SELEC"'] * 2


def test_dsn_options_reach_the_session_and_what_the_client_cannot_do_is_refused_at_load(
        postgres_server: PostgresServer) -> None:
    from pydantic import ValidationError

    from exporter.collectors.postgres import Config
    from exporter.collectors.sql import Config as SQLConfig

    async def main() -> list[dict[str, Any]]:
        session = PgSession(postgres_server.dsn() + "?options=-c%20statement_timeout%3D1234", 5.0)
        try:
            return await session.query("SELECT current_setting('statement_timeout') AS t")
        finally:
            await session.drop()

    assert run(main) == [{"t": "1234ms"}]
    with pytest.raises(ValidationError, match="target_session_attrs"):
        Config(name="p", dsn=postgres_server.dsn() + "?target_session_attrs=read-write")
    with pytest.raises(ValidationError, match="several hosts"):
        SQLConfig.model_validate({"name": "s", "dsn": "postgresql://u@a:5432,b:5432/db",
                                  "queries": [{"name": "q", "sql": "SELECT 1"}]})
