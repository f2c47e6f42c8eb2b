"""Writes an index must follow, however they reach the table: each search through the index
gives the answer of the same search over a copy no index can answer (a MATERIALIZED CTE)."""

from __future__ import annotations

import pytest

import quarrydb

# A vector per row id that no other row has: a search for row 210000's finds it first.
VECTOR = "[sin({x} * 1.37), cos({x} * 0.71), ({x}) / 300000.0, 1] :: FLOAT[4]"
SPREAD = "[sin({x} * 1.37), cos({x} * 0.71), sin({x} * 0.13 + 1), cos({x} * 2.9)] :: FLOAT[4]"


def search(cur, table: str, order: str, k: int = 5, columns: str = "id",
           ties: bool = False) -> list:
    """The search through the index, checked against the same search without it (`ties`:
    as a set, where rows score alike but for float rounding, which may order them otherwise)."""
    query = f"SELECT {columns} FROM {{}} ORDER BY {order} DESC LIMIT {k}"
    cur.execute("EXPLAIN " + query.format(table))
    assert "index scan" in dict(cur.fetchall())
    got = cur.execute(query.format(table)).fetchall()
    exact = cur.execute(f"WITH c AS MATERIALIZED (SELECT * FROM {table}) "
                        + query.format("c")).fetchall()
    assert sorted(got) == sorted(exact) if ties else got == exact
    return got


@pytest.fixture(params=["directory", "memory"])
def spread_rows(request, tmp_path):
    """300,000 rows; DELETE of 77,120 in the second row group, and a CHECKPOINT merges it
    with the third: every row id from 200,000 on moves down."""
    con = quarrydb.connect(str(tmp_path / "db") if request.param == "directory" else ":memory:")
    cur = con.cursor()
    cur.execute(f"CREATE TABLE t AS SELECT range AS id, {VECTOR.format(x='range')} AS v"
                " FROM range(300000)")
    cur.execute("CHECKPOINT")
    cur.execute("CREATE INDEX ti ON t USING faiss (v) WITH (kind = 'flat')")
    yield cur
    con.close()


@pytest.mark.parametrize("delete", [
    ("DELETE FROM t WHERE id >= ? AND id < ?", [122880, 200000]),  # its diff left for later
    ("DELETE FROM t WHERE id >= 122880 AND id < 200000", None),  # diffed at once
])
def test_a_checkpoint_that_moves_row_ids_after_a_delete(spread_rows, delete):
    """Before, a DELETE with parameters then CHECKPOINT (and in memory, any DELETE then
    CHECKPOINT) left vectors under row ids that had come to hold other rows."""
    cur = spread_rows
    order = f"similarity(v, {VECTOR.format(x='210000')})"
    assert search(cur, "t", order, k=2) == [(210000,), (211416,)]
    cur.execute(*[part for part in delete if part is not None])
    cur.execute("CHECKPOINT")
    assert cur.execute("SELECT max(rowid) FROM t").fetchone() == (222879,)  # they moved
    assert search(cur, "t", order, k=2) == [(210000,), (211416,)]


def test_explain_analyze_of_writes_in_a_transaction_while_another_cursor_searches(tmp_path):
    con = quarrydb.connect(str(tmp_path / "db"))
    a, b = con.cursor(), con.cursor()
    a.execute(f"CREATE TABLE t AS SELECT range AS id, {SPREAD.format(x='range')} AS v"
              " FROM range(1000)")
    a.execute("CREATE INDEX ti ON t USING faiss (v) WITH (kind = 'flat')")
    order = "similarity(v, [1, 0.5, 0, 1] :: FLOAT[4])"
    first, second = [row[0] for row in search(a, "t", order)[:2]]
    a.execute("BEGIN")
    a.execute(f"EXPLAIN ANALYZE DELETE FROM t WHERE id = {first}")
    a.execute(f"EXPLAIN ANALYZE UPDATE t SET v = [-1, -0.5, 0, -1] :: FLOAT[4]"
              f" WHERE id = {second}")
    search(b, "t", order)  # before the commit: the index as committed
    a.execute("COMMIT")
    found = [row[0] for row in search(b, "t", order)]
    assert first not in found and second not in found


def test_an_index_of_several_columns_follows_each_of_them(cur):
    """Before, the index's change key was the first argument of any function: an UPDATE of
    y under array_value(x, y, z) went unseen, even after a reopen."""
    cur.execute("CREATE TABLE p AS SELECT range AS id, sin(range * 1.3)::FLOAT AS x,"
                " cos(range * 0.7)::FLOAT AS y, sin(range * 0.2)::FLOAT AS z FROM range(200)")
    cur.execute("CREATE INDEX pi ON p USING faiss (array_value(x, y, z)) WITH (kind = 'flat')")
    order = "similarity(array_value(x, y, z), [0.0, 1.0, 0.0] :: FLOAT[3])"
    top = search(cur, "p", order)[0][0]
    cur.execute(f"UPDATE p SET y = -100 WHERE id = {top}")
    assert (top,) not in search(cur, "p", order)


def test_an_update_whose_where_draws_a_sample(cur):
    """Its rows were read beforehand with another draw of the same count, which passed the
    count check: the updated rows were not diffed."""
    cur.execute("CREATE TABLE p AS SELECT range AS id, sin(range * 1.3)::FLOAT AS x,"
                " cos(range * 0.7)::FLOAT AS y, sin(range * 0.2)::FLOAT AS z FROM range(2000)")
    cur.execute("CREATE INDEX pi ON p USING faiss ([x, y, z]) WITH (kind = 'flat')")
    order = "similarity([x, y, z], [0.3, 0.2, 0.1] :: FLOAT[3])"
    search(cur, "p", order)
    cur.execute("UPDATE p SET x = 0.3, y = 0.2, z = 0.1 + id * 0.000001"
                " WHERE id IN (SELECT id FROM p USING SAMPLE 5 ROWS)")
    moved = cur.execute("SELECT id FROM p WHERE x = 0.3::FLOAT ORDER BY id").fetchall()
    assert sorted(search(cur, "p", order, ties=True)) == moved  # they differ by 1e-6


def test_import_database_that_appends_to_an_indexed_table(cur, tmp_path):
    """DuckDB reports IMPORT DATABASE as a PRAGMA, which the engine took for a read."""
    (tmp_path / "schema.sql").write_text("")
    (tmp_path / "new.csv").write_text('id,v\n5000,"[1, 0.5, 0.001, 1]"\n')
    (tmp_path / "load.sql").write_text(f"COPY t FROM '{tmp_path}/new.csv' (HEADER);\n")
    cur.execute(f"CREATE TABLE t AS SELECT range AS id, {SPREAD.format(x='range')} AS v"
                " FROM range(1000)")
    cur.execute("CREATE INDEX ti ON t USING faiss (v) WITH (kind = 'flat')")
    order = "similarity(v, [1, 0.5, 0, 1] :: FLOAT[4])"
    search(cur, "t", order)
    cur.execute(f"IMPORT DATABASE '{tmp_path}'")
    assert search(cur, "t", order)[0] == (5000,)


def test_a_structs_field_is_indexed_by_brackets_and_refused_by_a_dot(cur):
    """`st.v` read as a column qualified by its table: column v was indexed instead."""
    cur.execute("CREATE TABLE a AS SELECT range AS id, {'v': [range, 1, 2]::FLOAT[3]} AS st,"
                " [1, 2, 3]::FLOAT[3] AS v FROM range(100)")
    with pytest.raises(quarrydb.ProgrammingError, match=r"st\.v names a struct's field.*st\['v'\]"):
        cur.execute("CREATE INDEX ai ON a USING faiss (st.v)")
    cur.execute("CREATE INDEX ai ON a USING faiss (st['v'])")
    assert search(cur, "a", "similarity(st['v'], [1, 1, 1] :: FLOAT[3])", k=3) == [
        (2,), (1,), (3,)]
    cur.execute("CREATE INDEX av ON a USING faiss (a.v)")  # the table's own name: its column


def test_the_checkpoint_table_function_in_memory(cur):
    """In memory only a CHECKPOINT statement tells the engine a checkpoint ran: the table
    function form (`SELECT * FROM checkpoint()`) was missed."""
    cur.execute(f"CREATE TABLE t AS SELECT range AS id, {VECTOR.format(x='range')} AS v"
                " FROM range(300000)")
    cur.execute("CREATE INDEX ti ON t USING faiss (v) WITH (kind = 'flat')")
    order = f"similarity(v, {VECTOR.format(x='210000')})"
    cur.execute("DELETE FROM t WHERE id >= 122880 AND id < 200000")
    assert search(cur, "t", order, k=2) == [(210000,), (211416,)]
    cur.execute("SELECT * FROM checkpoint()")
    assert cur.execute("SELECT max(rowid) FROM t").fetchone() == (222879,)  # they moved
    assert search(cur, "t", order, k=2) == [(210000,), (211416,)]


def test_a_graph_that_comes_back_short_beside_fresh_rows_runs_exact(cur):
    """A graph walk among many equal vectors finds fewer than k; the rows inserted since (scored
    exactly beside the graph) filled the answer, which then held worse rows than the k best."""
    cur.execute("CREATE TABLE t AS SELECT i AS id, CASE WHEN i < 12000"
                " THEN [((i % 5) - 2)::FLOAT, 1, 0, 0, 0, 0, 0, 0]::FLOAT[8]"
                " ELSE [sin(i * 1.3), cos(i * 0.7), sin(i * 0.2), cos(i * 2.9), sin(i * 0.5),"
                " cos(i * 1.1), sin(i * 3.7), cos(i * 0.3)]::FLOAT[8] END AS v"
                " FROM range(60000) r(i)")
    cur.execute("CREATE INDEX h ON t USING faiss (v) WITH (kind = 'hnsw')")
    cur.execute("INSERT INTO t SELECT i, [100 + i % 7, 100, 100, 100, 100, 100, 100, 100]"
                "::FLOAT[8] FROM range(60000, 60100) r(i)")
    probe = "[1, 1, 0, 0, 0, 0, 0, 0] :: FLOAT[8]"
    scores = cur.execute(f"SELECT similarity(v, {probe}) FROM t"
                         f" ORDER BY similarity(v, {probe}) DESC LIMIT 100").fetchall()
    assert min(score for (score,) in scores) > 0.9999  # 2,400 rows score 1 (before: 0.51)


def test_explain_analyze_of_a_write_after_a_comment(cur):
    """`/* c */ EXPLAIN ANALYZE DELETE ...` runs the write; the comment hid that it did."""
    cur.execute(f"CREATE TABLE t AS SELECT range AS id, {SPREAD.format(x='range')} AS v"
                " FROM range(1000)")
    cur.execute("CREATE INDEX ti ON t USING faiss (v) WITH (kind = 'flat')")
    order = "similarity(v, [1, 0.5, 0, 1] :: FLOAT[4])"
    first = search(cur, "t", order)[0]
    cur.execute(f"/* c */ EXPLAIN ANALYZE DELETE FROM t WHERE id = {first[0]}")
    assert first not in search(cur, "t", order)
    cur.execute("-- c\nEXPLAIN ANALYZE INSERT INTO t VALUES (7000, [1, 0.5, 0, 1] :: FLOAT[4])")
    assert search(cur, "t", order)[0] == (7000,)
