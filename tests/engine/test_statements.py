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
    cur.execute("SET model_batch_size = 4")
    cur.execute("SET on_media_error = 'raise'")
    cur.execute("SET threads = 1")
    cur.execute("RESET model_batch_size")
    cur.execute("RESET on_media_error; RESET threads")
    settings = cur._session.settings
    assert (settings.batch_size, settings.on_media_error) == (None, "null")
    assert cur.execute("SELECT current_setting('threads')").fetchone()[0] != 1


def test_fetchmany_with_a_size_that_is_not_a_number_is_a_clear_error(cur):
    cur.execute("SELECT * FROM range(5)")
    cur.arraysize = "x"
    with pytest.raises(quarrydb.ProgrammingError, match="number of rows"):
        cur.fetchmany()
    assert len(cur.fetchmany(2)) == 2
