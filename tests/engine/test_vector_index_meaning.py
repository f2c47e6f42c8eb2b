"""Queries that look like an index search and mean something else: each gives DuckDB's answer
(the same query on a copy of the table without an index), or DuckDB's error."""

from __future__ import annotations

import subprocess
import sys

import pytest

import quarrydb

FOUR_ROWS = "(1, [1, 0]), (2, [0, 1]), (3, NULL), (4, [0.7, 0.7])"


def indexed_and_plain(cur, columns: str, rows: str, *indexes: str) -> None:
    """Table `items` with the indexes, and `plain`, a copy without any."""
    cur.execute(f"CREATE TABLE items({columns})")
    cur.execute(f"INSERT INTO items VALUES {rows}")
    cur.execute("CREATE TABLE plain AS SELECT * FROM items")
    for index in indexes or ("iv ON items USING faiss (v) WITH (kind = 'flat')",):
        cur.execute(f"CREATE INDEX {index}")


def both(cur, query: str) -> tuple[list, list]:
    return (cur.execute(query.format("items")).fetchall(),
            cur.execute(query.format("plain")).fetchall())


def index_used(cur, query: str) -> bool:
    return "index scan" in dict(cur.execute(f"EXPLAIN {query.format('items')}").fetchall())


@pytest.mark.parametrize("setting, query, expected", [
    ("SET default_null_order = 'nulls_first'",
     "SELECT id FROM {} ORDER BY similarity(v, [1.0, 0.0]) DESC LIMIT 2", [(3,), (1,)]),
    ("SET default_null_order = 'nulls_first'",
     "SELECT id FROM {} ORDER BY distance(v, [1.0, 0.0]) LIMIT 2", [(3,), (1,)]),
    ("SET default_null_order = 'nulls_last_on_asc_first_on_desc'",
     "SELECT id FROM {} ORDER BY similarity(v, [1.0, 0.0]) DESC LIMIT 2", [(3,), (1,)]),
    ("SET default_order = 'descending'",
     "SELECT id FROM {} ORDER BY distance(v, [1.0, 0.0]) LIMIT 2", [(2,), (4,)]),
])
def test_duckdbs_default_sort_order_is_followed(cur, setting, query, expected):
    """Before, the index answered as if the defaults were DuckDB's own (ascending, NULLs
    last): the NULL row was left out, or the nearest rows came where the farthest belong."""
    indexed_and_plain(cur, "id INT, v FLOAT[2]", FOUR_ROWS,
                      "iv ON items USING faiss (v) WITH (kind = 'flat')",
                      "il ON items USING faiss (v) WITH (kind = 'flat', metric = 'l2')")
    cur.execute(setting)
    assert both(cur, query) == (expected, expected)


def test_a_written_order_still_uses_the_index_whatever_the_defaults(cur):
    indexed_and_plain(cur, "id INT, v FLOAT[2]", FOUR_ROWS)
    cur.execute("SET default_null_order = 'nulls_first'")
    cur.execute("SET default_order = 'descending'")
    query = "SELECT id FROM {} ORDER BY similarity(v, [1.0, 0.0]) DESC NULLS LAST LIMIT 2"
    assert both(cur, query) == ([(1,), (4,)], [(1,), (4,)])
    assert index_used(cur, query)
    cur.execute("RESET default_null_order")
    assert index_used(cur, query.replace(" NULLS LAST", ""))


def test_nulls_last_written_beside_a_model_call_is_kept(cur):
    """sqlglot prints `x NULLS LAST` as `x`, which after SET default_null_order = 'nulls_first'
    puts the NULLs first: the engine's reprint of a statement with a model call lost it."""
    cur.execute("CREATE TABLE notes AS SELECT * FROM (VALUES (1, 'a refund'), (2, NULL),"
                " (3, 'a cat')) t(id, body)")
    cur.execute("SET default_null_order = 'nulls_first'")
    cur.execute("SELECT id, embed(body) IS NULL FROM notes ORDER BY body NULLS LAST")
    assert cur.fetchall() == [(3, False), (1, False), (2, True)]
    cur.execute("SELECT id FROM notes ORDER BY classify(body, ['money', 'animal'])")
    assert cur.fetchall()[0] == (2,)  # the NULL's label, by the setting


def test_a_column_list_that_renames_the_tables_columns(cur):
    indexed_and_plain(cur, "id INT, v FLOAT[2], w FLOAT[2]",
                      "(1, [1, 0], [0, 1]), (2, [0, 1], [1, 0])")
    query = "SELECT id FROM {} AS x(id, w, v) ORDER BY similarity(v, [1.0, 0.0]) DESC LIMIT 1"
    assert both(cur, query) == ([(2,)], [(2,)])  # `v` here is the table's w


def test_a_struct_field_or_another_tables_column_of_the_indexed_name(cur):
    indexed_and_plain(cur, "id INT, v FLOAT[2], s STRUCT(v FLOAT[2])",
                      "(1, [1, 0], {'v': [0, 1]}), (2, [0, 1], {'v': [1, 0]})")
    assert both(cur, "SELECT id FROM {} ORDER BY similarity(s.v, [1.0, 0.0]) DESC LIMIT 1"
                ) == ([(2,)], [(2,)])
    for table in ("items", "plain"):
        with pytest.raises(quarrydb.ProgrammingError, match='table "nosuch" not found'):
            cur.execute(f"SELECT id FROM {table} AS x"
                        " ORDER BY similarity(nosuch.v, [1.0, 0.0]) DESC LIMIT 1")
    qualified = "SELECT id FROM {} AS x ORDER BY similarity(x.v, [1.0, 0.0]) DESC LIMIT 1"
    assert both(cur, qualified) == ([(1,)], [(1,)])
    assert index_used(cur, qualified)


def test_a_macro_that_hides_a_window_sees_every_row(cur):
    indexed_and_plain(cur, "id INT, v FLOAT[2]", ", ".join(
        f"({i}, [{(i % 7) / 7}, {(i % 5) / 5}])" for i in range(1, 101)))
    cur.execute("CREATE MACRO total_rows() AS count(*) OVER ()")
    query = "SELECT id, total_rows() AS n FROM {} ORDER BY similarity(v, [1.0, 0.0]) DESC LIMIT 3"
    indexed, plain = both(cur, query)
    assert indexed == plain and {n for _, n in indexed} == {100}
    assert index_used(cur, "SELECT id, similarity(v, [1.0, 0.0]) FROM {}"
                           " ORDER BY similarity(v, [1.0, 0.0]) DESC LIMIT 3")


@pytest.mark.parametrize("query", [
    "SELECT id, col FROM {} UNPIVOT (v FOR col IN (v, w))"
    " ORDER BY similarity(v, [1.0, 0.0]) DESC LIMIT 1",
    "SELECT * FROM {} PIVOT (count(*) FOR grp IN (1, 2))"
    " ORDER BY similarity(v, [1.0, 0.0]) DESC LIMIT 1",
])
def test_pivot_and_unpivot_of_the_indexed_table(cur, query):
    """Before, the search's SQL on the pivoted rows failed: 'rowid not found', quoting it."""
    indexed_and_plain(cur, "id INT, grp INT, v FLOAT[2], w FLOAT[2]",
                      "(1, 1, [1, 0], [0, 1]), (2, 2, [0, 1], [1, 0])")
    indexed, plain = both(cur, query)
    assert indexed == plain and len(plain) == 1


def test_a_vector_too_short_for_float32s_arithmetic_is_still_ranked(cur):
    """Its length squared underflows in float32: it was scaled to 1e-5 long, not to 1."""
    indexed_and_plain(cur, "id INT, v FLOAT[2]", "(1, [1e-35, 0]), (2, [1, -0.5]), (3, [0, -1])")
    query = "SELECT id FROM {} ORDER BY similarity(v, [1.0, 1.0]) DESC LIMIT 1"
    assert both(cur, query) == ([(1,)], [(1,)])
    assert index_used(cur, query)


def test_doubles_beyond_floats_range_are_never_ranked_by_the_index(cur):
    cur.execute("CREATE TABLE items(id INT, v DOUBLE[2])")
    cur.execute("INSERT INTO items VALUES (1, [1e300, 1e300]), (2, [1, 0])")
    with pytest.raises(quarrydb.ProgrammingError, match="1e\\+300, beyond FLOAT's range"):
        cur.execute("CREATE INDEX iv ON items USING faiss (v) WITH (kind = 'flat')")
    cur.execute("DELETE FROM items WHERE id = 1")
    cur.execute("CREATE INDEX iv ON items USING faiss (v) WITH (kind = 'flat')")
    cur.execute("INSERT INTO items VALUES (3, [1e300, 0])")  # the write stands, as in DuckDB
    query = "SELECT id FROM items ORDER BY similarity(v, [1.0, 0.0]) DESC LIMIT 1"
    with pytest.raises(quarrydb.DataError, match="Conversion Error"):
        cur.execute(query)  # DuckDB's error, where the index answered [(2,)]
    cur.execute("DELETE FROM items WHERE id = 3")
    assert cur.execute(query).fetchall() == [(2,)] and index_used(cur, query)


def test_an_ivf_l2_index_over_huge_numbers_is_refused_not_a_crash(tmp_path):
    """FAISS aborted the process training IVF on vectors whose squared lengths overflow
    float32 (`invalid cluster assignment`): run apart, so such an abort fails one test."""
    script = tmp_path / "huge.py"
    script.write_text(
        "import quarrydb\n"
        "cur = quarrydb.connect().cursor()\n"
        "cur.execute('CREATE TABLE items AS SELECT i AS id,"
        " [3e30 * (i % 3), 3e30 * (i % 5), i] :: FLOAT[3] AS v FROM range(300) t(i)')\n"
        "try:\n"
        "    cur.execute(\"CREATE INDEX iv ON items USING faiss (v)"
        " WITH (kind = 'ivf', metric = 'l2')\")\n"
        "except quarrydb.ProgrammingError as exc:\n"
        "    print(exc)\n")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "squared distances and products would overflow FLOAT" in run.stdout


def test_an_inner_product_over_a_null_vector_keeps_duckdbs_error(cur):
    indexed_and_plain(cur, "id INT, v FLOAT[2]", "(1, [1, 0]), (2, [0, 1]), (3, NULL)",
                      "ii ON items USING faiss (v) WITH (kind = 'flat', metric = 'ip')")
    for table in ("plain", "items"):
        with pytest.raises(quarrydb.Error, match="can not contain NULL values"):
            cur.execute(f"SELECT id FROM {table}"
                        " ORDER BY list_inner_product(v, [1.0, 0.0]) DESC LIMIT 1")


def test_a_begin_after_a_comment_opens_a_transaction_the_index_knows(cur):
    """Before, `/* tx */ BEGIN` went unnoticed: the next write raised a raw
    TransactionException (the index's own BEGIN inside the user's)."""
    indexed_and_plain(cur, "id INT, v FLOAT[2]", "(1, [1, 0]), (2, [0, 1])")
    query = "SELECT id FROM items ORDER BY similarity(v, [1.0, 0.0]) DESC LIMIT 1"
    cur.execute("/* tx */ BEGIN")
    cur.execute("DELETE FROM items WHERE id = 1")
    assert cur.execute(query).fetchall() == [(2,)]
    cur.execute("ROLLBACK")
    assert cur.execute(query).fetchall() == [(1,)]


def test_create_index_on_a_missing_table_shows_no_engine_sql(cur):
    with pytest.raises(quarrydb.ProgrammingError) as raised:
        cur.execute("CREATE INDEX bad ON nope USING faiss (v)")
    assert "nope does not exist" in str(raised.value)
    assert "LINE 1" not in str(raised.value) and "count(*)" not in str(raised.value)


@pytest.mark.parametrize("macro, call", [
    ("cnt(x) AS count(x) OVER ()", '"cnt"(id)'),  # a quoted name
    ("md5(x) AS count(x) OVER ()", "md5(id)"),  # DuckDB's own name, which the macro takes
])
def test_a_macro_called_by_a_quoted_or_a_builtin_name(cur, macro, call):
    indexed_and_plain(cur, "id INT, v FLOAT[2]", ", ".join(
        f"({i}, [{(i % 7) / 7}, {(i % 5) / 5}])" for i in range(1, 101)))
    cur.execute(f"CREATE MACRO {macro}")
    query = f"SELECT id, {call} AS n FROM {{}} ORDER BY similarity(v, [1.0, 0.0]) DESC LIMIT 3"
    indexed, plain = both(cur, query)
    assert indexed == plain and {n for _, n in indexed} == {100}


@pytest.mark.parametrize("setting", ["default_null_order = 'nulls_first'",
                                     "default_order = 'desc'"])
def test_list_sort_written_in_full_beside_a_model_call_is_kept(cur, setting):
    """sqlglot printed list_sort(x, 'ASC', 'NULLS LAST') as list_sort(x): after the SET,
    another order."""
    cur.execute("CREATE TABLE n AS SELECT * FROM (VALUES (1, 'hello'), (2, 'world')) t(id, body)")
    cur.execute(f"SET {setting}")
    cur.execute("SELECT list_sort([3, NULL, 1], 'ASC', 'NULLS LAST') AS s,"
                " max(length(embed(body))) AS e FROM n")
    assert cur.fetchall()[0][0] == [1, 3, None]


def test_a_probe_whose_inner_products_overflow_float_runs_exact(cur):
    indexed_and_plain(cur, "id INT, v DOUBLE[]", ", ".join(
        f"({i}, [{(i % 7) / 7 - 0.5}, {(i % 5) / 5 - 0.5}, {(i % 3) / 3}, 1])"
        for i in range(1, 301)),
        "ii ON items USING faiss (v) WITH (kind = 'flat', metric = 'ip')")
    query = ("SELECT id FROM {} ORDER BY list_inner_product(v, [3e38, -2e38, 1e38, 0.5e38]"
             " :: DOUBLE[]) DESC LIMIT 3")
    indexed, plain = both(cur, query)
    assert indexed == plain
    assert "the probe is not a vector the index can rank by" in dict(
        cur.execute(f"EXPLAIN {query.format('items')}").fetchall())["index scan"]
