"""Query shapes around model calls: windows and aggregates as arguments, select-list aliases in
HAVING and WHERE, and the shapes refused before anything runs (recursive CTEs reading their own
rows, lambdas reading their variable, ON CONFLICT DO UPDATE reading a column)."""

from __future__ import annotations

import pytest

import quarrydb

L = "['billing', 'bug report', 'praise']"
ROWS = [(1, "a", "my invoice is wrong"), (2, "a", "the app crashes"), (3, "b", "love it")]


@pytest.fixture
def tiny(cur):
    cur.execute("CREATE TABLE notes (id INTEGER, team VARCHAR, body VARCHAR)")
    cur.executemany("INSERT INTO notes VALUES (?, ?, ?)", ROWS)
    return cur


def _topics(cur) -> dict[str, str]:
    """Each body's label, as a plain select-list call gives it."""
    cur.execute(f"SELECT body, classify(body, {L}) FROM notes")
    return dict(cur.fetchall())


# --- windows and aggregates as arguments -------------------------------------------------------


def test_window_function_as_an_argument(tiny):
    topic = _topics(tiny)
    tiny.execute(f"SELECT id, classify(lag(body) OVER (ORDER BY id), {L}) FROM notes ORDER BY id")
    assert tiny.fetchall() == [(1, None), (2, topic[ROWS[0][2]]), (3, topic[ROWS[1][2]])]
    assert tiny.description[1][0] == f"classify(lag(body) OVER (ORDER BY id), {L})"


def test_window_argument_sees_the_rows_a_model_predicate_kept(tiny):
    topic = _topics(tiny)
    kept = [r for r in ROWS if topic[r[2]] != "praise"]
    tiny.execute(f"SELECT id, classify(lead(body) OVER (ORDER BY id), {L}) FROM notes"
                 f" WHERE classify(body, {L}) <> 'praise' ORDER BY id")
    expected = [(r[0], topic[n[2]] if n else None) for r, n in zip(kept, [*kept[1:], None])]
    assert tiny.fetchall() == expected


def test_window_argument_with_optimizer_off_reads_the_filtered_rows(tiny):
    topic = _topics(tiny)
    tiny.execute("SET optimizer = off")
    tiny.execute(f"SELECT id, classify(lag(body) OVER (ORDER BY id), {L}) FROM notes"
                 " WHERE id > 1 ORDER BY id")
    assert tiny.fetchall() == [(2, None), (3, topic[ROWS[1][2]])]


def test_aggregate_argument_with_optimizer_off_reads_the_filtered_rows(tiny):
    topic = _topics(tiny)
    tiny.execute("SET optimizer = off")
    tiny.execute(f"SELECT team, classify(first(body ORDER BY id), {L}) FROM notes WHERE id > 1"
                 " GROUP BY team ORDER BY team")
    assert tiny.fetchall() == [("a", topic[ROWS[1][2]]), ("b", topic[ROWS[2][2]])]


# --- select-list aliases in HAVING and WHERE ---------------------------------------------------


def test_having_names_an_alias_holding_a_model_call(tiny):
    tiny.execute(f"SELECT team, classify(first(body ORDER BY id), {L}) AS k FROM notes"
                 " GROUP BY team ORDER BY team")
    everything = tiny.fetchall()
    assert {k for _, k in everything} == {"billing", "praise"}  # one group is filtered out
    tiny.execute(f"SELECT team, classify(first(body ORDER BY id), {L}) AS k FROM notes"
                 " GROUP BY team HAVING k <> 'praise' ORDER BY team")
    assert tiny.fetchall() == [r for r in everything if r[1] != "praise"]


def test_having_names_a_plain_alias_beside_a_model_call(tiny):
    tiny.execute(f"SELECT team, count(*) AS n, classify(first(body ORDER BY id), {L}) FROM notes"
                 " GROUP BY team HAVING n > 1")
    assert tiny.fetchall() == [("a", 2, _topics(tiny)[ROWS[0][2]])]


def test_where_names_an_alias_holding_a_model_call(tiny):
    topic = _topics(tiny)
    tiny.execute(f"SELECT id, classify(body, {L}) AS k FROM notes WHERE k <> 'praise' ORDER BY id")
    assert tiny.fetchall() == [(i, topic[b]) for i, _, b in ROWS if topic[b] != "praise"]


# --- lambdas and list comprehensions -----------------------------------------------------------


@pytest.mark.parametrize("sql", [
    f"SELECT list_transform(['refund me', 'it crashes'], x -> classify(x, {L}))",
    f"SELECT list_transform(['refund me', 'it crashes'], lambda x: classify(x, {L}))",
    f"SELECT [classify(b, {L}) FOR b IN ['refund me', 'it crashes']]",
    f"SELECT list_transform([1, 2], lambda x: classify(body, {L})) FROM notes",
])
def test_model_call_reading_a_lambda_variable_or_a_column_is_refused(tiny, sql):
    with pytest.raises(quarrydb.NotSupportedError, match="lambda.*unnest the list"):
        tiny.execute(sql)


def test_model_call_with_a_constant_input_in_a_lambda(tiny):
    label = _topics(tiny)["the app crashes"]
    tiny.execute(f"SELECT list_transform(['a', 'b'], lambda x: x || classify('the app crashes',"
                 f" {L})), [y || classify('the app crashes', {L}) FOR y IN ['c']]")
    assert tiny.fetchall() == [([f"a{label}", f"b{label}"], [f"c{label}"])]
    topic = _topics(tiny)  # what the refusal of a lambda's variable suggests instead
    tiny.execute(f"SELECT list(classify(x, {L}) ORDER BY x) FROM"
                 " (SELECT unnest(['my invoice is wrong', 'love it']) AS x)")
    assert tiny.fetchall() == [([topic["love it"], topic["my invoice is wrong"]],)]


# --- ON CONFLICT DO UPDATE ---------------------------------------------------------------------


@pytest.fixture
def keyed(tiny):
    tiny.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body VARCHAR, k VARCHAR)")
    tiny.execute("INSERT INTO t VALUES (1, 'old', 'none')")
    return tiny


def test_upsert_reading_excluded_is_refused_before_it_writes(keyed):
    with pytest.raises(quarrydb.NotSupportedError, match="ON CONFLICT.*excluded.k"):
        keyed.execute("INSERT INTO t VALUES (1, 'the app crashes', NULL) ON CONFLICT (id)"
                      f" DO UPDATE SET k = classify(excluded.body, {L})")
    keyed.execute("SELECT * FROM t")
    assert keyed.fetchall() == [(1, "old", "none")]


def test_upsert_with_a_constant_model_call(keyed):
    label = _topics(keyed)["love it"]
    keyed.execute("INSERT INTO t VALUES (1, 'new', NULL) ON CONFLICT (id)"
                  f" DO UPDATE SET k = classify('love it', {L})")
    keyed.execute("SELECT * FROM t")
    assert keyed.fetchall() == [(1, "old", label)]


def test_explain_of_a_constant_call_in_an_upsert(keyed):
    keyed.execute("EXPLAIN INSERT INTO t VALUES (1, 'new', NULL) ON CONFLICT (id)"
                  f" DO UPDATE SET k = classify('love it', {L})")
    assert keyed.fetchall()[0][0] == "model stage 1"


# --- recursive CTEs ----------------------------------------------------------------------------


def test_recursive_cte_reading_its_own_rows_is_refused(tiny):
    with pytest.raises(quarrydb.NotSupportedError, match="WITH RECURSIVE r"):
        tiny.execute(f"WITH RECURSIVE r(i, s) AS (SELECT 1, 'refund' UNION ALL"
                     f" SELECT i + 1, classify(s, {L}) FROM r WHERE i < 3) SELECT * FROM r")
    # calls in the anchor and after the recursion read no row the recursion is making
    label = _topics(tiny)["my invoice is wrong"]
    tiny.execute(f"WITH RECURSIVE r(i, s) AS (SELECT 1, classify('my invoice is wrong', {L})"
                 " UNION ALL SELECT i + 1, s FROM r WHERE i < 3)"
                 f" SELECT i, s, classify(s, {L}) = s FROM r ORDER BY i")
    assert [row[:2] for row in tiny.fetchall()] == [(1, label), (2, label), (3, label)]


# --- a later select item naming a model call's alias --------------------------------------------


def test_a_later_select_item_reads_a_model_calls_alias(tiny):
    topic = _topics(tiny)
    tiny.execute(f"SELECT id, classify(body, {L}) AS k, upper(k),"
                 " count(*) OVER (PARTITION BY k) AS n FROM notes ORDER BY id")
    assert [d[0] for d in tiny.description] == ["id", "k", "upper(k)", "n"]
    assert [(r[0], r[2]) for r in tiny.fetchall()] == [
        (i, topic[body].upper()) for i, _, body in ROWS]
    assert len(tiny.stats["stages"]) == 1  # the alias's call and its copy: one stage


def test_a_column_of_the_aliass_name_wins_as_in_duckdb(tiny):
    tiny.execute(f"SELECT id, classify(body, {L}) AS team, upper(team) FROM notes ORDER BY id")
    assert [r[2] for r in tiny.fetchall()] == [t.upper() for _, t, _ in ROWS]


def test_one_call_twice_over_a_cte(tiny):
    """Two occurrences of one call gathered their inputs with a UNION of two queries, each
    with the statement's WITH: a parser error."""
    topic = _topics(tiny)
    tiny.execute(f"WITH c AS (SELECT * FROM notes) SELECT id, classify(body, {L}) AS k,"
                 f" length(k) FROM c ORDER BY id")
    assert [r[2] for r in tiny.fetchall()] == [len(topic[body]) for _, _, body in ROWS]
    tiny.execute(f"WITH c AS (SELECT * FROM notes) SELECT upper(classify(body, {L})),"
                 f" classify(body, {L}) FROM c ORDER BY id")
    assert [r[1] for r in tiny.fetchall()] == [topic[body] for _, _, body in ROWS]
