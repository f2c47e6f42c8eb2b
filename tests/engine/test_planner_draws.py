"""Random draws around model calls (random() in WHERE, TABLESAMPLE, USING SAMPLE, ORDER BY
random() LIMIT n): the stages and the final query read the same rows, drawn once, and a sample
sends only its rows to the model. What cannot be drawn once is refused before a model runs."""

from __future__ import annotations

import pytest

import quarrydb

L = "['billing', 'bug report']"
ROWS = 120


@pytest.fixture
def tickets(cur):
    cur.execute(f"CREATE TABLE t AS SELECT i, 'support ticket number ' || i AS s"
                f" FROM range({ROWS}) r(i)")
    cur.execute("CREATE TABLE u AS SELECT i, 'other ' || i AS q FROM range(40) r(i)")
    return cur


def _rows_and_inputs(cur, sql: str) -> tuple[list[tuple], int]:
    """The rows, and how many distinct inputs the stages sent on (cache hits included)."""
    cur.execute(sql)
    rows = cur.fetchall()
    return rows, sum(s["distinct_inputs"] for s in cur.stats["stages"])


@pytest.mark.parametrize("sql", [
    f"SELECT i, s, classify(s, {L}) FROM t WHERE random() < 0.5",
    f"SELECT i, s, classify(s, {L}) FROM t TABLESAMPLE bernoulli(50%)",
    f"SELECT i, s, classify(s, {L}) FROM (SELECT * FROM t ORDER BY random() LIMIT 10)",
    f"WITH x AS (SELECT * FROM t ORDER BY random() LIMIT 10) SELECT i, s, classify(s, {L})"
    " FROM x",
    f"SELECT x.i, x.s, classify(x.s, {L}) FROM t AS x TABLESAMPLE bernoulli(50%)"
    " WHERE x.i > 10 AND random() < 0.8",
])
def test_every_drawn_row_gets_its_models_result(tickets, sql):
    for _ in range(3):  # a draw that misses rows misses some almost surely in three tries
        rows, inputs = _rows_and_inputs(tickets, sql)
        assert rows and all(label is not None for _, _, label in rows)
        assert inputs == len(rows)  # the model saw the drawn rows, not the table


@pytest.mark.parametrize("sql", [
    f"SELECT i, classify(s, {L}) FROM t ORDER BY random() LIMIT 10",
    f"SELECT i, classify(s, {L}) FROM t WHERE i > 50 ORDER BY random() LIMIT 10 OFFSET 3",
    f"SELECT i, classify(s, {L}) FROM t USING SAMPLE 10 ROWS",
])
def test_a_sample_of_ten_rows_sends_ten_rows_to_the_model(tickets, sql):
    rows, inputs = _rows_and_inputs(tickets, sql)
    assert len(rows) == 10 and inputs == 10
    assert all(label is not None for _, label in rows)
    if "i > 50" in sql:
        assert all(i > 50 for i, _ in rows)


def test_a_random_filter_over_a_join_reads_a_superset(tickets):
    rows, _ = _rows_and_inputs(
        tickets, f"SELECT t.i, classify(t.s, {L}) FROM t JOIN u ON t.i = u.i"
                 " WHERE random() < 0.5")
    assert all(label is not None for _, label in rows)


def test_the_drawn_rows_tables_are_gone_after_the_statement(tickets):
    tickets.execute(f"SELECT classify(s, {L}) FROM t TABLESAMPLE bernoulli(50%)").fetchall()
    tickets.execute(f"EXPLAIN SELECT classify(s, {L}) FROM t TABLESAMPLE bernoulli(50%)")
    tickets.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary")
    assert tickets.fetchall() == [(0,)]


def test_a_model_input_that_draws_is_refused_before_a_model_runs(tickets):
    with pytest.raises(quarrydb.NotSupportedError, match="draw the value once in a subquery"):
        tickets.execute(f"SELECT classify(s || random()::VARCHAR, {L}) FROM t")
    tickets.execute(f"SELECT classify(x, {L}) FROM (SELECT s || (random() < 2)::VARCHAR AS x"
                    " FROM t USING SAMPLE 5)")
    assert [label is not None for (label,) in tickets.fetchall()] == [True] * 5


def test_rowid_beside_drawn_rows_is_refused(tickets):
    """The drawn rows' table numbers them anew: rowid gave 0, 1, 2 ... silently."""
    with pytest.raises(quarrydb.ProgrammingError, match="rowid beside a model call"):
        tickets.execute(f"SELECT rowid, classify(s, {L}) FROM t USING SAMPLE 4")


@pytest.mark.parametrize("source", ["main.t WHERE random() < 2", "main.t USING SAMPLE 3"])
def test_columns_qualified_with_the_schema_read_the_drawn_rows(tickets, source):
    """Before: Binder Error: Referenced table "main.t" not found."""
    tickets.execute(f"SELECT main.t.i, classify(main.t.s, {L}) FROM {source}")
    rows = tickets.fetchall()
    assert rows and all(label in ("billing", "bug report") for _, label in rows)
