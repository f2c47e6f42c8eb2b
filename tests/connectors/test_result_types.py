"""Rows fetched through quarrydb's cursor are DuckDB's own: the same Python values and types as
`duckdb.connect().execute(sql).fetchall()` gives, and the same description, for every type."""

from __future__ import annotations

import datetime
from typing import Any

import duckdb
import pandas
import pytest

import quarrydb

SETUP = ["CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')"]

# One value of each type (some types twice: a usual and an awkward value).
VALUES = [
    "true", "(-7)::TINYINT", "300::SMALLINT", "1::INTEGER", "9007199254740993::BIGINT",
    "200::UTINYINT", "60000::USMALLINT", "4000000000::UINTEGER", "18446744073709551615::UBIGINT",
    "1::HUGEINT", "170141183460469231731687303715884105727::HUGEINT",
    "(-99999999999999999999999999999999999999)::HUGEINT",
    "(-170141183460469231731687303715884105727)::HUGEINT - 1",
    "1::UHUGEINT", "340282366920938463463374607431768211455::UHUGEINT",
    "0.1::FLOAT", "'nan'::FLOAT", "0.1::DOUBLE", "'-inf'::DOUBLE",
    "1.5::DECIMAL(4,1)", "12345678901234567890123456789012345678::DECIMAL(38,0)",
    "1.5::DECIMAL(38,0)", "'3.1415926535'::DECIMAL(38,10)",
    "'text'", "'{\"a\": [1, 2]}'::JSON", "'\\xAA\\x00'::BLOB", "'101'::BIT", "'0000011111'::BIT",
    "'24c2b67c-3017-4a4f-8729-925f482a23aa'::UUID", "'ok'::mood",
    "DATE '2020-02-29'", "'infinity'::DATE", "DATE '0001-01-01' - 1",
    "TIME '10:11:12.5'", "TIME '24:00:00'", "TIME_NS '10:00:00.123456789'",
    "TIMETZ '10:00:00+02'", "TIMETZ '23:59:59-11:30'",
    "TIMESTAMP '2020-01-01 10:00:00.5'", "'infinity'::TIMESTAMP", "TIMESTAMP_S '2020-01-01'",
    "TIMESTAMP_MS '2020-01-01 10:00:00.123'", "TIMESTAMP_NS '2020-01-01 10:00:00.123456789'",
    "TIMESTAMPTZ '2020-11-01 06:30:00+00'", "'-infinity'::TIMESTAMPTZ",
    "INTERVAL '1 month 2 days 3 hours'", "INTERVAL 1 DAY",
    "MAP {'a': 1, 'b': NULL}", "MAP {1::HUGEINT: [INTERVAL 1 DAY]}",
    "{'a': 1::HUGEINT, 'b': 'x', 'c': '24c2b67c-3017-4a4f-8729-925f482a23aa'::UUID}",
    "[1, NULL, 3]", "[[1::HUGEINT], NULL]", "[MAP {'a': 1}]", "[TIMETZ '10:00:00+02']",
    "[1, 2]::INTEGER[2]", "[0.5, 0.25, NULL]::FLOAT[3]", "[[1, 2]::INTEGER[2]]",
    "[[1, 2], [3, 4]]::INTEGER[2][2]",
    "union_value(num := 2)::UNION(num INTEGER, str VARCHAR)",
    "union_value(str := 'x')::UNION(num INTEGER, str VARCHAR)",
    "union_value(h := 5::HUGEINT)::UNION(h HUGEINT, s VARCHAR)",
    "123456789012345678901234567890::VARINT", "NULL",
]


def same(a: Any, b: Any) -> bool:
    """Equal values of the same types all the way down (in Python 1 == 1.0 == Decimal('1'),
    and an aware time equals another one with the same UTC time)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return same(list(a), list(b)) and same(list(a.values()), list(b.values()))
    return repr(a) == repr(b)


@pytest.fixture(scope="module")
def connections():
    plain = duckdb.connect()
    with quarrydb.connect() as connection:
        cursor = connection.cursor()
        for sql in SETUP:
            plain.execute(sql)
            cursor.execute(sql)
        yield cursor, plain
    plain.close()


def query_of(value: str) -> str:
    """The value, NULL, in a list and in a struct: each type's nested conversions too."""
    return ("SELECT v, [v, NULL] AS l, {'f': v} AS s FROM"
            f" (SELECT 1 AS k, {value} AS v UNION ALL SELECT 2, NULL) ORDER BY k")


def check(cursor: quarrydb.connectors.dbapi.Cursor, plain: duckdb.DuckDBPyConnection,
          sql: str) -> list[tuple[Any, ...]]:
    answer = plain.execute(sql)
    description = answer.description
    expected = answer.fetchall()
    cursor.execute(sql)
    assert cursor.description == description
    got = cursor.fetchall()
    assert same(got, expected), (got, expected)
    return expected


@pytest.mark.parametrize("value", VALUES)
def test_each_type_is_fetched_as_duckdb_fetches_it(connections, value):
    cursor, plain = connections
    expected = check(cursor, plain, query_of(value))
    cursor.execute(query_of(value))
    assert same([cursor.fetchone(), *cursor.fetchmany(5), *cursor], expected)


@pytest.mark.parametrize("value", ["TIMETZ '10:00:00+02'", "'101'::BIT", "1::HUGEINT",
                                   "MAP {'a': 1}", "INTERVAL 1 DAY", "uuid()::VARCHAR",
                                   "1::UHUGEINT", "TIME '10:00:00'", "[TIMETZ '10:00:00+02']",
                                   "340282366920938463463374607431768211455::UHUGEINT"])
def test_arrow_and_pandas_stay_duckdbs(connections, value):
    cursor, plain = connections
    sql = f"SELECT {value} AS v"
    cursor.execute(sql)
    got = cursor.fetch_arrow_table()
    expected = plain.sql(sql).to_arrow_table()
    assert got.schema == expected.schema
    if "uuid" not in value:
        assert got.equals(expected)
    cursor.execute(sql)
    frame = cursor.fetchdf()
    try:  # DuckDB's df(); for TIMETZ and UHUGEINT it has none: pyarrow's, as before
        expected_frame = plain.sql(sql).df()
    except duckdb.NotImplementedException:
        expected_frame = expected.to_pandas()
    assert list(frame.dtypes) == list(expected_frame.dtypes)
    if "uuid" not in value:
        pandas.testing.assert_frame_equal(frame, expected_frame)


def test_the_reported_statements(connections):
    cursor, plain = connections
    for sql in ["SELECT TIMETZ '10:00:00+02'", "SELECT '101'::BIT", "SELECT MAP {'a': 1}",
                "SELECT INTERVAL 1 DAY", "SELECT sum(x) FROM (VALUES (1::BIGINT), (2)) t(x)",
                "SELECT 1::HUGEINT", "SELECT 1 AS a, 'x' AS a, 2.5 AS d"]:
        check(cursor, plain, sql)
    cursor.execute("SELECT TIMETZ '10:00:00+02'")
    assert cursor.fetchone()[0].utcoffset() == datetime.timedelta(hours=2)


def test_timestamptz_follows_the_time_zone_setting(connections):
    cursor, plain = connections
    for con in (cursor, plain):
        con.execute("SET TimeZone = 'America/New_York'")
    try:
        check(cursor, plain, query_of("TIMESTAMPTZ '2020-11-01 05:30:00+00'"))
        check(cursor, plain, query_of("MAP {TIMESTAMPTZ '1850-01-01 12:00:00+00': 1}"))
    finally:
        for con in (cursor, plain):
            con.execute("RESET TimeZone")


def test_many_rows_in_any_fetch_sizes(connections):
    """DuckDB converts blocks of rows of types pyarrow does not, and any long fetch."""
    cursor, plain = connections
    for sql in ["SELECT i, MAP {'k': i} AS m, i::HUGEINT AS h FROM range(5000) t(i) ORDER BY i",
                "SELECT i, 'row ' || i AS s, i * 0.5 AS d FROM range(25000) t(i) ORDER BY i",
                "SELECT i, [i, NULL]::FLOAT[2] AS a FROM range(25000) t(i) ORDER BY i"]:
        expected = check(cursor, plain, sql)
        cursor.execute(sql)
        got = [cursor.fetchone(), *cursor.fetchmany(2047), cursor.fetchone(), *cursor.fetchmany(3)]
        got += [next(iter(cursor)), *cursor.fetchmany(12000), *cursor.fetchall()]
        assert same(got, expected)
        assert cursor.fetchall() == [] and cursor.fetchone() is None


def test_an_index_search_answers_duckdbs_rows(connections):
    cursor, plain = connections
    create = ("CREATE OR REPLACE TABLE items AS SELECT i AS id, (i % 7)::HUGEINT AS h,"
              " TIMETZ '10:00:00+02' + to_seconds(i) AS tz, MAP {'i': i} AS m, [cos(i),"
              " sin(i), cos(2 * i), sin(3 * i)]::FLOAT[4] AS v FROM range(500) t(i)")
    cursor.execute(create)
    plain.execute(create)
    cursor.execute("CREATE INDEX items_v ON items USING faiss (v) WITH (kind = 'flat')")
    probe = "[0.3, 0.1, -0.2, 0.9]::FLOAT[4]"
    search = "SELECT id, h, tz, m, v FROM items ORDER BY {}(v, {}) DESC LIMIT 5"
    cursor.execute("EXPLAIN " + search.format("similarity", probe))
    assert "index scan" in dict(cursor.fetchall())
    expected = plain.execute(search.format("array_cosine_similarity", probe)).fetchall()
    for _ in range(2):  # the second time: the search kept, with its rows ranked
        cursor.execute(search.format("similarity", probe))
        assert same(cursor.fetchall(), expected)
        assert cursor.description == plain.sql("SELECT id, h, tz, m, v FROM items").description
    cursor.execute("DROP TABLE items")
    plain.execute("DROP TABLE items")


def test_lossless_arrow_set_by_the_user_is_duckdbs_too():
    plain = duckdb.connect()
    with quarrydb.connect() as connection:
        cursor = connection.cursor()
        for con in (cursor, plain):
            con.execute("SET arrow_lossless_conversion = true")
        sql = query_of("TIMETZ '10:00:00+02'") + ", 1::HUGEINT, uuid()::VARCHAR::UUID IS NULL"
        check(cursor, plain, sql)
        cursor.execute(sql)
        assert cursor.fetch_arrow_table().schema == plain.sql(sql).to_arrow_table().schema
    plain.close()


def test_a_lossless_read_leaves_other_cursors_arrow_alone(con):
    first, second = con.cursor(), con.cursor()
    first.execute("SELECT TIMETZ '10:00:00+02' AS t")
    second.execute("SELECT 1::HUGEINT AS h, current_setting('arrow_lossless_conversion') AS s")
    assert second.fetchall() == [(1, False)]
    second.execute("SELECT 1::HUGEINT AS h")
    assert str(second.fetch_arrow_table().schema.field(0).type) == "decimal128(38, 0)"


def test_engine_made_results_have_duckdb_types(cur):
    cur.execute("SHOW MODELS")
    assert {str(d[1]) for d in cur.description} <= {"VARCHAR", "BOOLEAN"}
    assert all(isinstance(v, (str, bool)) for v in cur.fetchone() if v is not None)


def test_model_outputs_are_fetched_as_duckdb_fetches_their_types(cur):
    cur.execute("SELECT embed('a cup of tea') AS e, classify('refund me', ['billing', 'bug'])"
                " AS c, similarity(embed('tea'), embed('coffee')) AS s")
    assert [str(d[1]) for d in cur.description] == ["FLOAT[384]", "VARCHAR", "FLOAT"]
    got = cur.fetchall()
    cur.execute("SELECT embed('a cup of tea') AS e, classify('refund me', ['billing', 'bug'])"
                " AS c, similarity(embed('tea'), embed('coffee')) AS s")
    plain = duckdb.connect()
    plain.register("answer", cur.fetch_arrow_table())
    expected = plain.execute("SELECT e::FLOAT[384], c::VARCHAR, s::FLOAT FROM answer").fetchall()
    assert same(got, expected)
    plain.close()
    assert isinstance(got[0][0], tuple) and len(got[0][0]) == 384


def test_a_write_returning_lossy_types_runs_once(connections):
    cursor, plain = connections
    for con in (cursor, plain):
        con.execute("CREATE TABLE w (a TIMETZ, b BIT)")
    sql = "INSERT INTO w VALUES (TIMETZ '10:00:00+02', '101'), (NULL, '11') RETURNING *"
    check(cursor, plain, sql)
    check(cursor, plain, "SELECT count(*) FROM w")
    for con in (cursor, plain):
        con.execute("DROP TABLE w")


def test_fetchdf_is_duckdbs_df_after_a_partial_fetch(connections):
    """DuckDB's df(), not pyarrow's to_pandas(): a NULL INTEGER column is Int32 with <NA> (was
    float64 NaN), a DATE datetime64 (was objects), a HUGEINT float64 (was Decimal)."""
    cursor, plain = connections
    sql = ("SELECT range AS i, 1::HUGEINT AS h, INTERVAL 1 DAY AS d, NULL::INTEGER AS n,"
           " DATE '2020-01-01' + range::INTEGER AS day FROM range(4)")
    cursor.execute(sql)
    assert cursor.fetchone() == plain.execute(sql).fetchall()[0]
    expected = plain.sql(sql).df().iloc[1:].reset_index(drop=True)
    pandas.testing.assert_frame_equal(cursor.fetchdf(), expected)
