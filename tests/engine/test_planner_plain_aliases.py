"""Select-list aliases a stage's input query cannot see: named in the WHERE, and as a model
call's input (an earlier item's alias). Answers as DuckDB reads them: the alias's expression,
unless the FROM clause has a column of that name, which wins."""

from __future__ import annotations

import pytest

L = "['billing', 'bug']"


@pytest.fixture
def t(cur):
    cur.execute("CREATE TABLE t AS SELECT * FROM (VALUES (1, 'the app crashes'),"
                " (2, 'refund me please'), (3, 'great work')) v(i, s)")
    return cur


def _labels(cur, texts: list[str]) -> dict[str, str]:
    listed = ", ".join(f"'{x}'" for x in texts)
    cur.execute(f"SELECT x, classify(x, {L}) FROM unnest([{listed}]) u(x)")
    return dict(cur.fetchall())


def test_where_names_a_plain_alias_beside_a_model_call(t):
    label = _labels(t, ["refund me please", "great work"])
    t.execute(f"SELECT i + 1 AS j, classify(s, {L}) AS c FROM t WHERE j > 2 ORDER BY j")
    assert t.fetchall() == [(3, label["refund me please"]), (4, label["great work"])]
    t.execute(f"SELECT upper(s) AS j, classify(s, {L}) AS c FROM t WHERE j LIKE 'R%'")
    assert t.fetchall() == [("REFUND ME PLEASE", label["refund me please"])]
    assert t.stats["stages"][0]["rows_in"] == 1  # the WHERE filtered the model's inputs


def test_a_later_model_call_reads_an_earlier_plain_alias(t):
    texts = ["ticket: the app crashes", "ticket: refund me please", "ticket: great work"]
    label = _labels(t, texts)
    t.execute(f"SELECT 'ticket: ' || s AS body, classify(body, {L}) AS c FROM t ORDER BY i")
    assert t.fetchall() == [(x, label[x]) for x in texts]
    t.execute(f"SELECT 'ticket: ' || s AS a, a AS body, classify(body, {L}) AS c FROM t"
              f" WHERE classify(a, {L}) IS NOT NULL ORDER BY i")
    assert [row[2] for row in t.fetchall()] == [label[x] for x in texts]


def test_a_from_column_of_the_aliass_name_wins(t):
    label = _labels(t, ["the app crashes"])
    t.execute(f"SELECT i + 10 AS i, classify(s, {L}) AS c FROM t WHERE i = 1")
    assert t.fetchall() == [(11, label["the app crashes"])]
    t.execute(f"SELECT upper(s) AS s, classify(s, {L}) AS c FROM t WHERE i = 1")
    assert t.fetchall() == [("THE APP CRASHES", label["the app crashes"])]
