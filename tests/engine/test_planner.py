"""Model calls become stages: predicates first, each distinct input once, any query shape."""

from __future__ import annotations

import pytest

LABELS = "['billing', 'bug report']"


def test_relational_predicates_run_before_the_model(notes):
    notes.execute(
        f"SELECT id FROM notes WHERE team = 'billing' AND created > DATE '2026-01-01'"
        f" AND classify(body, {LABELS}) = 'billing' ORDER BY id"
    )
    assert [r[0] for r in notes.fetchall()] == [1, 6, 8]
    # Rows 1, 6, 8 pass the cheap filters; 1 and 8 share a body: two texts reach the model.
    assert notes.stats["model_inputs"] == 2
    assert notes.stats["stages"][0]["rows_in"] == 2


def test_a_repeated_query_makes_no_model_calls(notes):
    sql = f"SELECT id, classify(body, {LABELS}) FROM notes ORDER BY id"
    notes.execute(sql)
    first = notes.fetchall()
    assert notes.stats["model_inputs"] == 6
    notes.execute(sql)
    assert notes.fetchall() == first
    assert notes.stats["model_inputs"] == 0
    assert notes.stats["cache_hits"] == 6


def test_the_same_call_in_select_where_and_order_by_is_one_stage(notes):
    notes.execute(
        f"SELECT id, classify(body, {LABELS}) AS t FROM notes"
        f" WHERE classify(body, {LABELS}) = 'bug report' ORDER BY classify(body, {LABELS}), id"
    )
    assert [r[0] for r in notes.fetchall()] == [2, 4, 7]
    assert len(notes.stats["stages"]) == 1


def test_a_model_predicate_narrows_the_rows_of_later_calls(notes):
    notes.execute(
        f"SELECT id, embed(body) FROM notes WHERE classify(body, {LABELS}) = 'bug report'"
    )
    classify_stage, embed_stage = notes.stats["stages"]
    assert classify_stage["function"] == "classify"
    assert embed_stage["rows_in"] == 3  # only the rows classified as bug reports


def test_cte_subquery_and_aggregate_shapes(notes):
    notes.execute(
        f"""WITH recent AS (SELECT * FROM notes WHERE created > DATE '2026-01-01')
            SELECT topic, count(*) FROM (
                SELECT classify(body, {LABELS}) AS topic FROM recent
            ) GROUP BY topic ORDER BY topic"""
    )
    assert notes.fetchall() == [("billing", 3), ("bug report", 3), (None, 1)]
    notes.execute(
        f"SELECT classify(body, {LABELS}) AS topic, count(*) AS n FROM notes"
        f" GROUP BY classify(body, {LABELS}) HAVING count(*) > 1 ORDER BY 1"
    )
    assert notes.fetchall() == [("billing", 4), ("bug report", 3)]


def test_window_functions_around_model_calls(notes):
    notes.execute(
        f"SELECT id, row_number() OVER (PARTITION BY classify(body, {LABELS}) ORDER BY id) AS n"
        f" FROM notes WHERE body IS NOT NULL ORDER BY id"
    )
    assert notes.fetchall() == [(1, 1), (2, 1), (3, 2), (4, 2), (6, 3), (7, 3), (8, 4)]


def test_a_join_reads_each_side_once(cur):
    cur.execute("CREATE TABLE a AS SELECT * FROM (VALUES (1, 'my invoice is wrong'),"
                " (2, 'the app crashes')) t(id, x)")
    cur.execute("CREATE TABLE b AS SELECT * FROM (VALUES (10, 'billed twice'),"
                " (20, 'error on start'), (30, 'refund my payment')) t(id, y)")
    cur.execute(
        f"SELECT a.id, b.id FROM a JOIN b ON classify(a.x, {LABELS}) = classify(b.y, {LABELS})"
        " ORDER BY 1, 2"
    )
    assert cur.fetchall() == [(1, 10), (1, 30), (2, 20)]
    assert cur.stats["model_inputs"] == 5  # n + m, not n x m


def test_correlated_and_scalar_subqueries(notes):
    notes.execute(
        f"SELECT id, (SELECT count(*) FROM notes n2 WHERE classify(n2.body, {LABELS}) ="
        f" classify(n.body, {LABELS}) AND n2.id < n.id) FROM notes n WHERE id <= 4 ORDER BY id"
    )
    assert notes.fetchall() == [(1, 0), (2, 0), (3, 1), (4, 1)]


def test_union_and_insert_select(notes):
    notes.execute(
        f"CREATE TABLE labelled AS SELECT id, classify(body, {LABELS}) AS topic FROM notes"
        f" WHERE id < 3 UNION ALL SELECT id, classify(body, {LABELS}) FROM notes WHERE id = 7"
    )
    notes.execute("SELECT * FROM labelled ORDER BY id")
    assert notes.fetchall() == [(1, "billing"), (2, "bug report"), (7, "bug report")]
    notes.execute(f"INSERT INTO labelled SELECT 99, classify('refund my card', {LABELS})")
    assert notes.rowcount == 1
    notes.execute("SELECT topic FROM labelled WHERE id = 99")
    assert notes.fetchone() == ("billing",)


def test_update_with_a_model_call(notes):
    notes.execute("ALTER TABLE notes ADD COLUMN topic VARCHAR")
    notes.execute(f"UPDATE notes SET topic = classify(body, {LABELS}) WHERE id IN (1, 2)")
    assert notes.rowcount == 2
    notes.execute("SELECT id, topic FROM notes WHERE topic IS NOT NULL ORDER BY id")
    assert notes.fetchall() == [(1, "billing"), (2, "bug report")]
    assert notes.stats == {}


def test_parameters_inside_a_model_statement(notes):
    notes.execute(
        "SELECT id FROM notes WHERE team = ? AND classify(body, ?) = ? ORDER BY id",
        ["support", ["billing", "bug report"], "bug report"],
    )
    assert [r[0] for r in notes.fetchall()] == [2, 4, 7]
    notes.execute("SELECT classify($text, ['billing', 'bug report'])", {"text": "refund me"})
    assert notes.fetchone() == ("billing",)


def test_order_by_an_alias_of_a_select_expression(notes):
    notes.execute(
        "SELECT id, lower(body) AS b FROM notes WHERE body IS NOT NULL"
        " ORDER BY similarity(embed(b), embed('card payment')) DESC LIMIT 1"
    )
    assert notes.fetchone()[0] == 6


@pytest.mark.parametrize("position", ["select", "where"])
def test_explain_shows_the_stages_before_duckdbs_plan(notes, position):
    call = f"classify(body, {LABELS})"
    sql = f"SELECT {call} FROM notes" if position == "select" else (
        f"SELECT id FROM notes WHERE team = 'billing' AND {call} = 'billing'"
    )
    notes.execute("EXPLAIN " + sql)
    rows = notes.fetchall()
    assert rows[0][0] == "model stage 1"
    assert "classify (model minilm" in rows[0][1] and "batch size 32" in rows[0][1]
    assert "input: SELECT DISTINCT body" in rows[0][1]
    if position == "where":
        assert "team = 'billing'" in rows[0][1]
    assert rows[1][0] == "physical_plan"
    assert notes.stats["model_inputs"] == 0
