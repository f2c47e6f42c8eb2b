"""Statements without model calls reach DuckDB exactly as written and give DuckDB's answers."""

from __future__ import annotations

import duckdb
import pytest

SETUP = [
    "CREATE TABLE sales (region VARCHAR, month INTEGER, amount DECIMAL(10, 2))",
    "INSERT INTO sales VALUES ('north', 1, 10.5), ('north', 2, 20), ('south', 1, 7.25),"
    " ('south', 2, 3)",
]

STATEMENTS = [
    # lambda syntax and list functions, which sqlglot regenerates differently
    "SELECT list_transform([1, 2, 3], lambda x: x * 2), [x + 1 FOR x IN [1, 2] IF x > 1]",
    "PIVOT sales ON month USING sum(amount) ORDER BY region",
    "SELECT region, sum(amount) OVER (PARTITION BY region ORDER BY month) FROM sales ORDER BY ALL",
    "FROM sales SELECT region, month WHERE amount > 5 ORDER BY ALL",
    "SELECT {'a': 1, 'b': [1, 2]}::STRUCT(a INT, b INT[]) AS s",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT sum(n)"
    " FROM r",
    "SELECT region, arg_max(month, amount), quantile_cont(amount, 0.5) FROM sales"
    " GROUP BY ALL ORDER BY ALL",
    "SELECT 'embed(body)' AS text_not_a_call, strftime(DATE '2026-01-02', '%d/%m/%Y')",
    "SELECT COLUMNS('re.*') FROM sales ORDER BY 1 LIMIT 1",
    "DESCRIBE sales",
    # long vector literals are set aside before parsing and must come back exactly as written
    "SELECT [" + ", ".join(f"{i / 7:.9f}" for i in range(20)) + "] AS decimals, '["
    + ", ".join(str(i) for i in range(20)) + "]' AS text_not_a_vector, ["
    + ", ".join(str(i) for i in range(20)) + "]::INTEGER[] AS integers",
]


@pytest.mark.parametrize("sql", STATEMENTS)
def test_plain_duckdb_sql_gives_duckdbs_answer(cur, sql):
    plain = duckdb.connect()
    for statement in SETUP:
        plain.execute(statement)
        cur.execute(statement)
    expected = plain.execute(sql).fetchall()
    cur.execute(sql)
    assert cur.fetchall() == expected
    assert cur.stats == {}


def test_several_statements_in_one_text_return_the_last_result(cur):
    cur.execute("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1), (2); SELECT sum(a) FROM t")
    assert cur.fetchall() == [(3,)]


def test_vector_literals_in_several_statements_are_each_put_back(cur):
    first = "[" + ", ".join(f"{i / 3:.6f}" for i in range(24)) + "]"
    second = "[" + ", ".join(f"{-i / 5:.6f}" for i in range(24)) + "]"
    cur.execute(f"CREATE TABLE v AS SELECT {first}::FLOAT[24] AS a; INSERT INTO v VALUES"
                f" ({second}); SELECT a FROM v ORDER BY a[2]")
    got = [tuple(row[0]) for row in cur.fetchall()]  # arrays come back as lists (via Arrow)
    plain = duckdb.connect()
    expected = plain.execute(f"SELECT {second}::FLOAT[24] UNION ALL SELECT {first}::FLOAT[24]"
                             ).fetchall()
    assert got == [row[0] for row in expected]


def test_duckdb_settings_still_work(cur):
    cur.execute("SET threads = 1")
    cur.execute("SELECT current_setting('threads')")
    assert cur.fetchone() == (1,)
