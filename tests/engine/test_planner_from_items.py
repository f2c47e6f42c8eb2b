"""Model calls inside a FROM item (a lateral unnest, VALUES, a table function's arguments), in
an unnest's argument, and the calls written as no model call can be (a model call as a table,
arguments by name): answers as DuckDB's with a plain function, or a clear error."""

from __future__ import annotations

import pytest

import quarrydb

L = "['billing', 'bug']"


@pytest.fixture
def t(cur):
    cur.execute("CREATE TABLE t AS SELECT * FROM (VALUES (1, 'the app crashes', ['refund me',"
                " 'it crashes']), (2, NULL, ['my invoice'])) v(i, s, l)")
    return cur


def _label(cur, text: str) -> str:
    return cur.execute(f"SELECT classify('{text}', {L})").fetchall()[0][0]


def test_a_call_in_a_lateral_unnest(t):
    crashes = _label(t, "the app crashes")
    t.execute(f"SELECT i, x FROM t, unnest([classify(s, {L}), 'z']) u(x)")
    assert sorted(t.fetchall(), key=repr) == sorted(
        [(1, crashes), (1, "z"), (2, "z"), (2, None)], key=repr)
    t.execute(f"SELECT t.i, u.x FROM t, unnest([classify(t.s, {L})]) u(x) WHERE t.i = 2")
    assert t.fetchall() == [(2, None)]
    assert t.stats["stages"][0]["rows_in"] == 1  # the WHERE on t filtered the inputs


def test_a_call_in_values_in_from(t):
    refund, crashes = _label(t, "refund me"), _label(t, "the app crashes")
    t.execute(f"SELECT * FROM (VALUES (classify('refund me', {L})), ('z')) v(c)")
    assert sorted(t.fetchall()) == sorted([(refund,), ("z",)])
    t.execute(f"SELECT i, c FROM t, (VALUES (classify(t.s, {L}))) v(c) ORDER BY i")
    assert t.fetchall() == [(1, crashes), (2, None)]


def test_a_call_over_unnest(t):
    labels = {x: _label(t, x) for x in ("refund me", "it crashes", "my invoice")}
    t.execute(f"SELECT i, classify(unnest(l), {L}) FROM t ORDER BY i")
    assert sorted(t.fetchall()) == sorted(
        [(1, labels["refund me"]), (1, labels["it crashes"]), (2, labels["my invoice"])])
    t.execute(f"SELECT classify(unnest(['refund me', 'it crashes']), {L})")
    assert t.fetchall() == [(labels["refund me"],), (labels["it crashes"],)]


def test_a_model_call_as_a_table_is_refused_clearly(t):
    with pytest.raises(quarrydb.ProgrammingError, match=r"scalar function.*SELECT classify"):
        t.execute(f"SELECT * FROM classify('refund me', {L})")


def test_arguments_by_name_are_refused_clearly(t):
    with pytest.raises(quarrydb.ProgrammingError, match=r"by position, not by name \(labels :="):
        t.execute("SELECT classify('refund', labels := ['billing', 'bug'])")


def test_a_one_call_list_keeps_a_null_result(t):
    """`[classify(s, L)]` is a one-element list, [NULL] for a NULL input (not ARRAY(subquery),
    DuckDB's list of a subquery's rows: [] where the lookup finds none)."""
    t.execute(f"SELECT i, [classify(s, {L})] FROM t ORDER BY i")
    assert t.fetchall() == [(1, [_label(t, "the app crashes")]), (2, [None])]
