"""What `connect()`, `execute()` and `executemany()` say about inputs they cannot use: a
quarrydb DB-API error with a clear message, never a raw OS or Python error."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

import numpy as np
import pytest

import quarrydb
from quarrydb.engine.database import DUCKDB_FILE

# --- database paths ----------------------------------------------------------------------------


def test_a_path_under_a_regular_file_is_an_operational_error(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(quarrydb.OperationalError, match="afile/sub.*Not a directory"):
        quarrydb.connect(tmp_path / "afile" / "sub")


def test_a_format_entry_that_is_a_directory_is_an_operational_error(tmp_path):
    (tmp_path / "db" / "FORMAT").mkdir(parents=True)
    with pytest.raises(quarrydb.OperationalError, match="FORMAT' is not a file"):
        quarrydb.connect(tmp_path / "db")


@pytest.mark.parametrize("path", [None, 42, b"db"])
def test_a_path_of_the_wrong_type_is_a_programming_error(path):
    with pytest.raises(quarrydb.ProgrammingError, match="must be a str or a pathlib.Path"):
        quarrydb.connect(path)


def test_no_path_and_an_empty_path_are_in_memory_as_in_duckdb():
    for connection in (quarrydb.connect(), quarrydb.connect("")):
        with connection:
            assert connection.path == ":memory:"
            assert connection.execute("SELECT 1").fetchall() == [(1,)]


def test_a_directory_another_process_is_still_creating_is_taken_as_ours(tmp_path):
    """The other process has made `tmp/` and is writing FORMAT (atomically, through a
    temporary file): that is a new quarrydb database, not a foreign directory."""
    database = tmp_path / "db"
    (database / "tmp").mkdir(parents=True)
    (database / ".FORMAT.abc123.tmp").write_text('{"for')
    with quarrydb.connect(database) as connection:
        assert connection.execute("SELECT 1").fetchall() == [(1,)]
    assert json.loads((database / "FORMAT").read_text())["format"] >= 1


def test_a_foreign_directory_is_still_refused(tmp_path):
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "notes.txt").write_text("mine")
    with pytest.raises(quarrydb.OperationalError, match="not a quarrydb database"):
        quarrydb.connect(tmp_path / "db")


def test_a_database_open_in_another_process_is_said_to_be_in_use(tmp_path):
    """DuckDB lets one process open a database file to write; the other gets a clear error.
    The holder reads the file (file_mark) as quarrydb does, which must not drop its lock."""
    database = tmp_path / "db"
    with quarrydb.connect(database) as holder:
        holder.execute("CREATE TABLE t AS SELECT 1 AS x")
        other = subprocess.run(
            [sys.executable, "-c", _OPEN_IN_ANOTHER_PROCESS, str(database / DUCKDB_FILE)],
            capture_output=True, text=True, timeout=60,
        )
        assert "Could not set lock" in other.stdout, other.stdout + other.stderr
    with pytest.raises(quarrydb.OperationalError, match="in use by another process"):
        _use_while_held(database)


def test_a_connection_dropped_without_close_lets_another_process_open_the_database(tmp_path):
    """As with DuckDB's `del con`: the lock must not outlive every reference to it."""
    database = tmp_path / "db"
    con = quarrydb.connect(database)
    con.execute("CREATE TABLE t AS SELECT 1 AS x")
    cursor = con.cursor()
    cursor.execute("SELECT * FROM t")
    del con, cursor
    gc.collect()
    other = subprocess.run(
        [sys.executable, "-c", _OPEN_IN_ANOTHER_PROCESS, str(database / DUCKDB_FILE)],
        capture_output=True, text=True, timeout=60,
    )
    assert other.stdout.strip() == "opened", other.stdout + other.stderr
    with quarrydb.connect(database) as again:  # and this process opens it afresh
        assert again.execute("SELECT * FROM t").fetchall() == [(1,)]


_OPEN_IN_ANOTHER_PROCESS = """
import sys, duckdb
try:
    duckdb.connect(sys.argv[1])
    print("opened")
except duckdb.Error as exc:
    print(exc)
"""

_HOLD = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
sys.stdin.read()
"""


def _use_while_held(database):
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(database / DUCKDB_FILE)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with quarrydb.connect(database) as connection:
            connection.execute("SELECT 1")
    finally:
        holder.communicate("", timeout=60)


# --- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [5, "ab", 1.5, {1, 2}, np.int64(3), np.array(7)])
def test_parameters_that_are_not_a_sequence_or_mapping_are_refused(cur, params):
    with pytest.raises(quarrydb.ProgrammingError, match="must be a sequence .* or a mapping"):
        cur.execute("SELECT ?", params)


def test_a_numpy_array_of_parameters_is_a_sequence(cur):
    assert cur.execute("SELECT ?, ?", np.array([1, 2])).fetchall() == [(1, 2)]
    assert cur.execute("SELECT ?", np.array(["x"])).fetchall() == [("x",)]


def test_numpy_scalars_inside_parameters_bind_as_their_values(cur):
    assert cur.execute("SELECT ?, ?", [np.int64(4), np.float32(0.5)]).fetchall() == [(4, 0.5)]
    assert cur.execute("SELECT $a", {"a": np.bool_(True)}).fetchall() == [(True,)]


def test_sequences_and_mappings_still_bind(cur):
    assert cur.execute("SELECT ? + ?", (1, 2)).fetchone() == (3,)
    assert cur.execute("SELECT $a", {"a": 4}).fetchone() == (4,)
    assert cur.execute("SELECT 5", None).fetchone() == (5,)


@pytest.mark.parametrize("seq_of_params", [None, 3])
def test_executemany_needs_a_sequence_of_parameter_sets(cur, seq_of_params):
    with pytest.raises(quarrydb.ProgrammingError, match="sequence of parameter sets"):
        cur.executemany("SELECT ?", seq_of_params)


def test_executemany_refuses_an_item_that_is_not_a_parameter_set(cur):
    with pytest.raises(quarrydb.ProgrammingError, match="must be a sequence .* or a mapping"):
        cur.executemany("SELECT ?", [1, 2])


def test_executemany_takes_a_generator_and_a_numpy_matrix(cur):
    cur.execute("CREATE TABLE t (a INTEGER, b INTEGER)")
    cur.executemany("INSERT INTO t VALUES (?, ?)", ((i, i) for i in range(3)))
    cur.executemany("INSERT INTO t VALUES (?, ?)", np.array([[7, 8], [9, 10]]))
    assert cur.rowcount == 2
    assert cur.execute("SELECT sum(a), sum(b) FROM t").fetchone() == (19, 21)


def test_executemany_runs_the_model_once_for_every_parameter_set(cur):
    """A model call over parameters alone is computed for all rows in one batched stage before
    the rows' statements run: each then finds its value cached (one model call per row before)."""
    texts = [f"ticket {i}: the invoice total is wrong" for i in range(6)] + ["the app crashes"]
    cur.execute("CREATE TABLE notes (id INTEGER, body VARCHAR, v FLOAT[384], topic VARCHAR)")
    cur.executemany("INSERT INTO notes (id, body, v) VALUES (?, ?, embed(?))",
                    [(i, text, text) for i, text in enumerate(texts)])
    assert cur.rowcount == len(texts)
    assert (cur.stats["model_inputs"], cur.stats["cache_hits"]) == (0, 1)
    cur.executemany("UPDATE notes SET topic = classify($body, ['billing', 'bug']) WHERE id = $id",
                    [{"id": i, "body": text} for i, text in enumerate(texts)])
    assert (cur.stats["model_inputs"], cur.stats["cache_hits"]) == (0, 1)
    stored = cur.execute("SELECT body, v, topic FROM notes ORDER BY id").fetchall()
    fresh = cur.execute("SELECT body, embed(body), classify(body, ['billing', 'bug']) FROM notes"
                        " ORDER BY id").fetchall()
    assert stored == fresh


def test_executemany_with_a_model_call_still_stops_at_the_row_that_fails(cur):
    cur.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, v FLOAT[384])")
    with pytest.raises(quarrydb.IntegrityError):
        cur.executemany("INSERT INTO notes VALUES (?, embed(?))",
                        [(1, "one"), (2, "two"), (1, "one again"), (3, "three")])
    assert cur.execute("SELECT id FROM notes ORDER BY id").fetchall() == [(1,), (2,)]


def test_executemany_into_a_missing_table_runs_no_model(cur):
    with pytest.raises(quarrydb.ProgrammingError, match="Table with name missing does not"):
        cur.executemany("INSERT INTO missing VALUES (?, embed(?))",
                        [(i, f"sentence {i}") for i in range(20)])
    # Not the 20 rows' calls ahead: at most the first row's own, as one INSERT ... VALUES
    # runs its call before DuckDB looks for the table.
    assert cur.execute("SELECT count(*) FROM _quarry.result_cache").fetchall()[0][0] <= 1


def test_a_row_error_shows_duckdbs_message_not_the_engines_rewritten_sql(cur):
    cur.execute("CREATE TABLE e (id INTEGER, v FLOAT[384])")
    with pytest.raises(quarrydb.DataError) as raised:
        cur.executemany("INSERT INTO e VALUES (?, embed(?))", [(1, "a"), ("not a number", "b")])
    assert "Could not convert string 'not a number'" in str(raised.value)
    assert "__quarry" not in str(raised.value) and "LINE" not in str(raised.value)
    assert cur.execute("SELECT id FROM e").fetchall() == [(1,)]


def test_executemany_keeps_every_rows_warnings(cur, tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    cur.execute("CREATE TABLE photos (id INTEGER, label VARCHAR)")
    cur.executemany("INSERT INTO photos VALUES (?, classify(image(?), ['cat', 'dog']))",
                    [(1, str(tmp_path / "empty.jpg")), (2, str(tmp_path / "missing.jpg"))])
    assert [w.split(": ")[-1] for w in cur.warnings] == ["empty (0 bytes)", "missing file"]
    assert cur.execute("SELECT * FROM photos ORDER BY id").fetchall() == [(1, None), (2, None)]
