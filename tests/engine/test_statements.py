"""Statements the engine reads itself (SET, RESET), what a write answers (its row count),
and how rows are fetched."""

from __future__ import annotations

import pytest

import quarrydb


@pytest.mark.parametrize("statement", ["-- keep it small\nSET model_batch_size = 4",
                                       "/* small */ SET model_batch_size = 4",
                                       "SET model_batch_size = 4 -- small",
                                       "SET model_batch_size = 4; -- small"])
def test_a_setting_may_carry_comments(cur, statement):
    cur.execute(statement)
    assert cur._session.settings.batch_size == 4


def test_a_write_with_returning_answers_its_rows_and_counts_them(cur):
    cur.execute("CREATE TABLE t (id INTEGER, name VARCHAR)")
    cur.execute("INSERT INTO t VALUES (1, 'returning'), (42, 'b')")
    assert cur.rowcount == 2
    cur.execute("INSERT INTO t VALUES (7, 'x') RETURNING name")
    assert (cur.rowcount, cur.fetchall()) == (1, [("x",)])
    cur.execute("DELETE FROM t WHERE id = 42 RETURNING id")
    assert (cur.rowcount, cur.fetchall()) == (1, [(42,)])
    cur.execute("UPDATE t SET name = 'c' WHERE id < 10")
    assert cur.rowcount == 2


def test_reset_puts_quarrydbs_settings_back_and_leaves_duckdbs_to_duckdb(cur):
    threads = cur.execute("SELECT current_setting('threads')").fetchone()[0]
    changed = 2 if threads == 1 else 1  # a 1-CPU machine starts with 1 thread
    cur.execute("SET model_batch_size = 4")
    cur.execute("SET on_media_error = 'raise'")
    cur.execute(f"SET threads = {changed}")
    assert cur.execute("SELECT current_setting('threads')").fetchone()[0] == changed
    cur.execute("RESET model_batch_size")
    cur.execute("RESET on_media_error; RESET threads")
    settings = cur._session.settings
    assert (settings.batch_size, settings.on_media_error) == (None, "null")
    assert cur.execute("SELECT current_setting('threads')").fetchone()[0] == threads


def test_fetchmany_with_a_size_that_is_not_a_number_is_a_clear_error(cur):
    cur.execute("SELECT * FROM range(5)")
    cur.arraysize = "x"
    with pytest.raises(quarrydb.ProgrammingError, match="number of rows"):
        cur.fetchmany()
    assert len(cur.fetchmany(2)) == 2


def test_current_setting_reads_quarrydbs_settings_as_duckdbs_own(cur):
    assert cur.execute("SELECT current_setting('model_batch_size')").fetchall() == [("default",)]
    cur.execute("SET model_batch_size = 16")
    cur.execute("SET optimizer = off")
    cur.execute("SET on_media_error = 'raise'")
    row = cur.execute("SELECT current_setting('MODEL_BATCH_SIZE'), current_setting('optimizer'),"
                      " current_setting('on_media_error'), current_setting('device'),"
                      " current_setting('threads') > 0").fetchall()
    assert row == [("16", "off", "raise", cur._session.settings.device, True)]
    with pytest.raises(quarrydb.ProgrammingError, match="unrecognized configuration"):
        cur.execute("SELECT current_setting('no_such_setting')")
    cur.execute("SELECT current_setting('device'), current_setting('optimizer') AS o")
    assert [column[0] for column in cur.description] == ["current_setting('device')", "o"]
    # Not frozen into a view (or macro): DuckDB's own error, as for any unknown setting.
    with pytest.raises(quarrydb.ProgrammingError, match="unrecognized configuration"):
        cur.execute("CREATE VIEW batch AS SELECT current_setting('model_batch_size') AS b")


def test_create_table_if_not_exists_with_a_model_call_runs_no_model_when_the_table_exists(cur):
    cur.execute("CREATE TABLE notes AS SELECT 'the printer is on fire' AS body")
    cur.execute("CREATE TABLE IF NOT EXISTS notes AS"
                " SELECT classify(body, ['billing', 'bug']) AS topic FROM notes")
    assert cur.stats.get("model_inputs", 0) == 0
    assert cur.execute("SELECT * FROM notes").fetchall() == [("the printer is on fire",)]
    # A temporary table of that name is another table; a view takes the name as a table does.
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS notes AS"
                " SELECT classify(body, ['billing', 'bug']) AS topic FROM notes")
    assert cur.stats["model_inputs"] == 1
    label = cur.execute("SELECT classify('the printer is on fire', ['billing', 'bug'])").fetchall()
    assert cur.execute("SELECT * FROM temp.notes").fetchall() == label
    cur.execute("CREATE VIEW recent AS SELECT 1 AS x")
    cur.execute("CREATE TABLE IF NOT EXISTS recent AS"
                " SELECT classify(body, ['billing', 'bug']) AS topic FROM memory.main.notes")
    assert cur.execute("SELECT * FROM recent").fetchall() == [(1,)]


@pytest.mark.parametrize("statement, message", [
    ("CREATE TABLE notes AS SELECT classify(body, ['a', 'b']) AS c FROM notes",
     'Table with name "notes" already exists'),
    ("CREATE TABLE recent AS SELECT classify(body, ['a', 'b']) AS c FROM notes",
     'View with name "recent" already exists'),
    ("INSERT INTO missing SELECT classify(body, ['a', 'b']) FROM notes",
     "Table with name missing does not exist!"),
    ("CREATE TABLE MEMORY.Main.NOTES AS SELECT classify(body, ['a', 'b']) FROM notes",
     'Table with name "NOTES" already exists'),  # names compare without case, as in DuckDB
])
def test_a_write_whose_target_is_taken_or_missing_fails_before_any_model_runs(
        cur, statement, message):
    cur.execute("CREATE TABLE notes AS SELECT 'the printer is on fire' AS body")
    cur.execute("CREATE VIEW recent AS SELECT 1 AS x")
    stages = []
    cur.set_progress(lambda *report: stages.append(report))
    with pytest.raises(quarrydb.ProgrammingError, match=message) as raised:
        cur.execute(statement)
    assert "LINE" not in str(raised.value) and stages == []


def test_copy_and_create_table_as_answer_their_row_count_as_duckdb_does(cur, tmp_path):
    source = tmp_path / "rows.csv"
    source.write_text("a\n1\n2\n3\n")
    cur.execute("CREATE TABLE t (a INTEGER)")
    assert cur.rowcount == -1
    cur.execute(f"COPY t FROM '{source}'")
    assert (cur.rowcount, cur.fetchall()) == (3, [(3,)])
    cur.execute(f"COPY t TO '{tmp_path / 'out.csv'}'")
    assert (cur.rowcount, cur.fetchall()) == (3, [(3,)])
    cur.execute("CREATE TABLE u AS SELECT * FROM range(7)")
    assert (cur.rowcount, cur.fetchall()) == (7, [(7,)])
    cur.execute("CREATE TABLE labelled AS SELECT classify(a::VARCHAR || ' apples',"
                " ['fruit', 'car']) AS topic FROM t")
    assert (cur.rowcount, cur.fetchall()) == (3, [(3,)])
