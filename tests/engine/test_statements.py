"""Statements the engine reads itself (SET) and what a write answers (its row count)."""

from __future__ import annotations

import pytest


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
