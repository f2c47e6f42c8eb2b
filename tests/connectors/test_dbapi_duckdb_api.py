"""What a DuckDB user types, through quarrydb's DB-API: each answered as DuckDB answers it."""

from __future__ import annotations

import datetime
import decimal
import importlib.util

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

import quarrydb

LABELS = "['billing', 'bug']"


# --- Python variables as tables (DuckDB's replacement scan) ---------------------------------------

def test_a_dataframe_or_arrow_table_is_queried_by_its_variable_name(con):
    frame = pd.DataFrame({"id": [1, 2], "body": ["the app crashes", "refund me please"]})  # noqa: F841
    arrow = pa.table({"id": [3], "body": ["I was charged twice"]})  # noqa: F841
    assert con.execute("SELECT count(*) FROM frame").fetchall() == [(2,)]
    assert con.execute("SELECT id FROM arrow").fetchall() == [(3,)]
    rows = con.execute(f"SELECT id, classify(body, {LABELS}) FROM frame UNION ALL"
                       f" SELECT id, classify(body, {LABELS}) FROM arrow ORDER BY id").fetchall()
    assert [row[0] for row in rows] == [1, 2, 3]
    assert {row[1] for row in rows} <= {"billing", "bug"}


def test_a_variable_is_read_from_the_calling_function_and_left_registered_nowhere(con):
    def count_local(cursor: quarrydb.Cursor) -> list:
        local_df = pd.DataFrame({"x": [1, 2, 3]})  # noqa: F841
        return cursor.execute("SELECT sum(x) FROM local_df").fetchall()

    assert count_local(con.cursor()) == [(6,)]
    assert count_local(con) == [(6,)]  # through the connection's own cursor
    with pytest.raises(quarrydb.ProgrammingError, match="local_df does not exist"):
        con.execute("SELECT sum(x) FROM local_df")


def test_a_variable_read_inside_a_transaction_keeps_it(con):
    """Before, the check whether a table of the name existed failed inside BEGIN ... COMMIT,
    which aborted the transaction: every later statement failed and its writes were lost."""
    frame = pd.DataFrame({"i": [1, 2, 3]})  # noqa: F841 (read by name below)
    con.execute("CREATE TABLE t (i INTEGER)")
    con.execute("BEGIN")
    con.execute("INSERT INTO t VALUES (0)")
    assert con.execute("SELECT count(*) FROM frame").fetchall() == [(3,)]
    con.execute("INSERT INTO t SELECT i FROM frame")
    con.execute("COMMIT")
    assert con.execute("SELECT count(*) FROM t").fetchall() == [(4,)]


def test_a_variable_never_clashes_with_a_table_a_statement_creates(con):
    scores = pd.DataFrame({"x": [1]})  # noqa: F841 (a variable of the name, unrelated)
    con.execute("CREATE TEMP TABLE scores AS SELECT 1 AS id, 0.5 AS s")
    assert con.execute("SELECT * FROM scores").fetchall() == [(1, 0.5)]
    items = pa.table({"s": ["from the DataFrame"]})  # noqa: F841
    con.execute("CREATE TABLE items AS SELECT 'from the table' AS s; SELECT s FROM items")
    assert con.fetchall() == [("from the table",)]


def test_a_record_batch_reader_variable_serves_a_model_call(con):
    reader = pa.table({"s": ["the app crashes", "refund me"]}).to_reader()  # noqa: F841
    con.execute("SELECT s, classify(s, ['bug', 'billing']) FROM reader ORDER BY s")
    rows = con.fetchall()  # before: "This RecordBatchReader has already been consumed"
    assert [row[0] for row in rows] == ["refund me", "the app crashes"]
    assert {row[1] for row in rows} <= {"bug", "billing"}


def test_a_table_comes_before_a_variable_and_engine_names_shadow_nothing(con):
    """DuckDB's catalog comes first; a user's variable named as the engine's own variables
    (data, table, rows, ...) is the user's."""
    body = pd.DataFrame({"id": [1]})  # noqa: F841 - read by the statement
    con.execute("CREATE TABLE body AS SELECT 42 AS id")
    assert con.execute("SELECT id FROM body").fetchall() == [(42,)]
    data = pd.DataFrame({"body": ["the app crashes"]})  # noqa: F841
    table = pa.table({"body": ["refund me"]})  # noqa: F841
    rows = con.execute(f"SELECT classify(body, {LABELS}) FROM data UNION ALL"
                       f" SELECT classify(body, {LABELS}) FROM \"table\"").fetchall()
    assert len(rows) == 2


# --- parameters beside a model call: written into the SQL, bound as DuckDB binds them ----------

@pytest.mark.parametrize("value", [
    decimal.Decimal("NaN"), decimal.Decimal("-Infinity"), decimal.Decimal("1E+5"),
    decimal.Decimal("-0.5"), decimal.Decimal("0.000"), decimal.Decimal("100"),
    decimal.Decimal("1E+38"), datetime.time(1, 2, tzinfo=datetime.timezone.utc),
    datetime.time(3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=30))),
    bytearray(b"ab"), memoryview(b"cd"), 2**63, 2**64 - 1, {}, {"key": [1, 2], "value": ["a", "b"]},
    [{"a": decimal.Decimal("2.50")}],
], ids=lambda value: "memoryview" if isinstance(value, memoryview) else repr(value))
def test_a_parameter_beside_a_model_call_has_duckdbs_value_and_type(con, value):
    duck = duckdb.connect().execute("SELECT ? AS v", [value])
    wanted = (repr(duck.fetchall()), str(duck.description[0][1]))  # repr: NaN is no NaN
    ours = con.execute(f"SELECT ? AS v, classify('x', {LABELS}) AS c", [value])
    rows = ours.fetchall()
    assert (repr([row[:1] for row in rows]), str(ours.description[0][1])) == wanted


def test_a_parameter_duckdb_cannot_bind_is_refused_beside_a_model_call(con):
    with pytest.raises(quarrydb.ProgrammingError, match="128-bit"):
        con.execute(f"SELECT ? AS v, classify('x', {LABELS})", [2**128])


# --- connect() as duckdb.connect takes it ---------------------------------------------------------

def test_a_named_in_memory_database_is_in_memory_and_shared_by_its_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with quarrydb.connect(":memory:shared") as first:
        first.execute("CREATE TABLE t AS SELECT 42 AS i")
        with quarrydb.connect(database=":memory:shared") as second:
            assert second.execute("SELECT i FROM t").fetchall() == [(42,)]
        with quarrydb.connect(":memory:other") as other, pytest.raises(
                quarrydb.ProgrammingError, match="t does not exist"):
            other.execute("SELECT i FROM t")
    assert list(tmp_path.iterdir()) == []


def test_config_is_duckdbs_and_a_bad_key_is_a_clear_error(tmp_path):
    with quarrydb.connect(config={"threads": 3}) as con:
        assert con.execute("SELECT current_setting('threads')").fetchall() == [(3,)]
    with pytest.raises(quarrydb.ProgrammingError, match="not recognized: bogus"):
        quarrydb.connect(tmp_path / "db", config={"bogus": 1})
    assert not (tmp_path / "db").exists()
    with quarrydb.connect(path=tmp_path / "db", config={"threads": 2}) as con, pytest.raises(
            quarrydb.OperationalError, match="another config"):
        quarrydb.connect(tmp_path / "db")


def test_a_registered_record_batch_reader_serves_a_model_call_and_later_statements(con):
    """A reader can be read once; a statement with a model call reads its tables twice (it
    failed: 'already been consumed'). It is read into a table when registered."""
    table = pa.table({"id": [1, 2], "txt": ["great job", "it is broken"]})
    con.register("rb", pa.RecordBatchReader.from_batches(table.schema, table.to_batches()))
    rows = con.execute("SELECT id, classify(txt, ['praise', 'bug']) FROM rb ORDER BY id")
    assert [row[0] for row in rows.fetchall()] == [1, 2]
    assert con.execute("SELECT count(*) FROM rb").fetchall() == [(2,)]


# --- DuckDB's Python API names ------------------------------------------------------------------

def test_a_result_is_fetched_in_duckdbs_shapes(con):
    duck = duckdb.connect()
    sql = "SELECT 1::INTEGER AS a, NULL::INTEGER AS b, 'x' AS s"
    assert con.execute(sql).df().equals(duck.execute(sql).df())
    assert con.execute(sql).fetch_df().dtypes.to_dict() == duck.execute(sql).df().dtypes.to_dict()
    ours, theirs = con.execute(sql).fetchnumpy(), duck.execute(sql).fetchnumpy()
    assert list(ours) == list(theirs) and all(
        str(ours[k]) == str(theirs[k]) and ours[k].dtype == theirs[k].dtype for k in ours)
    assert con.execute(sql).arrow() == con.execute(sql).to_arrow_table() == pa.table(
        {"a": pa.array([1], pa.int32()), "b": pa.array([None], pa.int32()), "s": ["x"]})
    assert con.df().empty  # read on from what was fetched, as DuckDB's


def test_pl_gives_polars_or_says_it_is_not_installed(con):
    if importlib.util.find_spec("polars") is None:
        with pytest.raises(quarrydb.NotSupportedError, match="polars"):
            con.execute("SELECT 1 AS a").pl()
    else:
        assert con.execute("SELECT 1 AS a").pl().to_dicts() == [{"a": 1}]


@pytest.mark.parametrize("statement", ["CREATE TABLE u (i INTEGER)", "SET threads = 1", "BEGIN"])
def test_a_statement_with_no_result_fetches_nothing_as_in_duckdb(cur, statement):
    assert cur.execute(statement).fetchall() == []
    assert cur.execute("SET threads = 2").fetchone() is None
    assert cur.fetchmany(3) == []


def test_con_sql_runs_at_once_and_keeps_its_result(con, capsys):
    assert con.sql("CREATE TABLE t AS SELECT 42 AS i") is None
    result = con.sql("SELECT i, classify('the app crashes', ['bug', 'praise']) AS c FROM t"
                     " WHERE i = ?", [42])
    con.execute("DELETE FROM t")  # later statements leave the result as it was
    assert result.columns == ["i", "c"]
    assert result.fetchone() == (42, "bug")
    assert result.fetchall() == []
    again = con.query("SELECT 7 AS n")
    assert again.df().to_dict("list") == {"n": [7]}
    assert isinstance(con.sql("SELECT 7 AS n").arrow(), pa.RecordBatchReader)
    con.sql("SELECT 7 AS n").show()
    assert "│     7 │" in capsys.readouterr().out


def test_begin_interrupt_and_rollback_as_in_duckdb(con):
    assert con.begin() is con
    con.execute("CREATE TABLE t (i INTEGER)")
    con.rollback()
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 't'"
                       ).fetchall() == [(0,)]
    with pytest.raises(quarrydb.OperationalError, match="no transaction is active"):
        con.rollback()
    con.commit()  # no transaction: DuckDB's commit does nothing either
    assert con.interrupt() is None


# --- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("sql", ["SELECT * FROM nonexist", "SELECT nope FROM range(3)",
                                 "FROM range(3) SELECT 1 +* 2"])
def test_a_plain_statements_error_keeps_duckdbs_position(con, sql):
    with pytest.raises(duckdb.Error) as duck:
        duckdb.connect().execute(sql)
    with pytest.raises(quarrydb.ProgrammingError) as ours:
        con.execute(sql)
    position = str(duck.value).split("\n\nLINE ")[1]
    assert str(ours.value).endswith("\n\nLINE " + position)


def test_config_access_mode_read_only_is_read_only(tmp_path):
    """DuckDB's access_mode setting means read_only=True (before: DuckDB refused the engine's
    own CREATE on opening, and a new directory was left behind)."""
    path = tmp_path / "ro.quarry"
    with quarrydb.connect(path) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    with quarrydb.connect(path, config={"access_mode": "READ_ONLY"}) as con:
        assert con.execute("SELECT * FROM t").fetchall() == [(1,)]
        with pytest.raises(quarrydb.ProgrammingError, match="read-only"):
            con.execute("INSERT INTO t VALUES (2)")
    with pytest.raises(quarrydb.OperationalError):
        quarrydb.connect(tmp_path / "new.quarry", config={"access_mode": "read_only"})
    assert not (tmp_path / "new.quarry").exists()
