"""The DB-API basics a Python user expects, shaped like DuckDB's and sqlite3's."""

from __future__ import annotations

import pyarrow as pa
import pytest

import quarrydb


def test_module_globals():
    assert quarrydb.apilevel == "2.0"
    assert quarrydb.paramstyle == "qmark"
    assert issubclass(quarrydb.ProgrammingError, quarrydb.DatabaseError)
    assert issubclass(quarrydb.DatabaseError, quarrydb.Error)


def test_fetch_shapes(notes):
    notes.execute("SELECT id, team FROM notes WHERE id <= ? ORDER BY id", [4])
    assert [d[0] for d in notes.description] == ["id", "team"]
    assert notes.fetchone() == (1, "billing")
    assert notes.fetchmany(2) == [(2, "support"), (3, "billing")]
    assert notes.fetchall() == [(4, "support")]
    assert notes.fetchone() is None
    assert notes.fetchall() == []


def test_arrow_pandas_and_iteration(notes):
    table = notes.execute("SELECT id, body FROM notes ORDER BY id").fetch_arrow_table()
    assert isinstance(table, pa.Table) and table.num_rows == 8
    frame = notes.execute("SELECT id FROM notes WHERE id > 6 ORDER BY id").fetchdf()
    assert frame["id"].tolist() == [7, 8]
    assert [row[0] for row in notes.execute("SELECT id FROM notes WHERE id < 3 ORDER BY 1")] == [
        1, 2
    ]


def test_rowcount_for_changes_and_queries(cur):
    cur.execute("CREATE TABLE t (a INTEGER)")
    assert cur.rowcount == -1 and cur.description is None
    cur.execute("INSERT INTO t VALUES (1), (2), (3)")
    assert cur.rowcount == 3
    cur.execute("UPDATE t SET a = a + 1 WHERE a > 1")
    assert cur.rowcount == 2
    cur.executemany("INSERT INTO t VALUES (?)", [(7,), (8,)])
    assert cur.rowcount == 2
    cur.execute("DELETE FROM t")
    assert cur.rowcount == 5


def test_named_and_numbered_parameters(cur):
    assert cur.execute("SELECT $1 + $2", [1, 2]).fetchone() == (3,)
    assert cur.execute("SELECT $a || $b", {"a": "x", "b": "y"}).fetchone() == ("xy",)


def test_context_managers_close(tmp_path):
    with quarrydb.connect(tmp_path / "db.quarry") as con:
        with con.cursor() as cur:
            cur.execute("CREATE TABLE t AS SELECT 1 AS a")
        assert con.execute("SELECT a FROM t").fetchall() == [(1,)]
    assert con.closed
    with pytest.raises(quarrydb.InterfaceError):
        con.execute("SELECT 1")


def test_transactions_commit_and_rollback(con):
    cur = con.cursor()
    cur.execute("CREATE TABLE t (a INTEGER)")
    cur.execute("BEGIN TRANSACTION")
    cur.execute("INSERT INTO t VALUES (1)")
    con.rollback()
    assert cur.execute("SELECT count(*) FROM t").fetchone() == (0,)
    cur.execute("BEGIN TRANSACTION")
    cur.execute("INSERT INTO t VALUES (2)")
    con.commit()
    assert con.cursor().execute("SELECT a FROM t").fetchall() == [(2,)]



def test_connection_execute_keeps_one_session(con):
    """As DuckDB runs con.execute on the connection itself: a SET, a temporary table and a
    transaction last from one con.execute to the next (each ran on a new cursor: a ROLLBACK
    found no transaction, and the row it should have undone stayed)."""
    con.execute("CREATE TABLE t (a INTEGER)")
    con.execute("CREATE TEMP TABLE scratch AS SELECT 1 AS x")
    assert con.execute("SELECT x FROM scratch").fetchall() == [(1,)]
    con.execute("SET model_batch_size = 2")
    con.execute("SELECT classify('note ' || i, ['billing', 'bug']) FROM range(5) r(i)")
    assert con.execute("SELECT 1").stats == {}  # no model work
    cursor = con.execute("SELECT classify('memo ' || i, ['billing', 'bug']) FROM range(5) r(i)")
    assert cursor.stats["stages"][0]["batches"] == [2, 2, 1]
    assert con.execute("SELECT 1") is cursor
    con.execute("BEGIN")
    con.execute("INSERT INTO t VALUES (1)")
    con.execute("ROLLBACK")
    assert con.execute("SELECT count(*) FROM t").fetchall() == [(0,)]
    con.executemany("INSERT INTO t VALUES (?)", [[1], [2]])
    assert con.execute("SELECT sum(a) FROM t").fetchall() == [(3,)]
    con.register("extra", pa.table({"a": [40]}))  # DuckDB's habits on the connection itself
    con.execute("SELECT a FROM t UNION ALL SELECT a FROM extra ORDER BY a")
    assert [d[0] for d in con.description] == ["a"]
    assert con.fetchone() == (1,) and con.fetchmany(1) == [(2,)] and con.fetchall() == [(40,)]
    con.unregister("extra")

def test_show_models_lists_the_packaged_text_model(cur):
    cur.execute("SHOW MODELS")
    models = {row[0]: row for row in cur.fetchall()}
    names = [d[0] for d in cur.description]
    minilm = dict(zip(names, models["minilm"]))
    assert minilm["source"] == "package" and minilm["available"] is True
    assert "embed" in minilm["functions"] and "classify" in minilm["functions"]
    assert minilm["device"] == "cpu"


def test_set_device_and_batch_size(notes):
    notes.execute("SET device = 'cpu'")
    notes.execute("SET model_batch_size = 2")
    notes.execute("SELECT classify(body, ['billing', 'bug report', 'x']) FROM notes")
    assert notes.stats["stages"][0]["batches"] == [2, 2, 2]
    with pytest.raises(quarrydb.ProgrammingError, match="positive integer"):
        notes.execute("SET model_batch_size = -1")


def test_register_a_dataframe_or_arrow_table(cur):
    import pandas as pd

    cur.register("frame", pd.DataFrame({"a": [1, 2, 3]}))
    cur.register("arrow", pa.table({"b": ["x", "y"]}))
    assert cur.execute("SELECT sum(a) FROM frame").fetchone() == (6,)
    assert cur.execute("SELECT count(*) FROM arrow").fetchone() == (2,)
    cur.unregister("frame")
    with pytest.raises(quarrydb.ProgrammingError, match="frame"):
        cur.execute("SELECT * FROM frame")
    with pytest.raises(quarrydb.ProgrammingError, match="cannot register"):
        cur.register("bad", object())
