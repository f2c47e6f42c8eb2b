"""Planner regressions: predicates of two model calls, result column names, DELETE with a model
predicate, and parameters as DuckDB binds them."""

from __future__ import annotations

import datetime
import uuid

import numpy as np
import pytest

import quarrydb
from quarrydb.connectors.sample_media import write_sample_media

LABELS = "['billing', 'bug report']"
BILLING = [1, 3, 6, 8]  # the notes fixture's billing notes (5 has no body)


def _names(cursor) -> list[str]:
    return [d[0] for d in cursor.description]


# --- a predicate that reads two model calls ----------------------------------------------------


def test_similarity_of_two_embeddings_in_where(notes):
    """The README's pattern: sampling the predicate must not hand DuckDB a model call."""
    query = "the app crashes or freezes"
    notes.execute(f"SELECT id, similarity(embed(body), embed('{query}')) FROM notes")
    expected = sorted(i for i, score in notes.fetchall() if score is not None and score > 0.3)
    assert expected and len(expected) < 7
    notes.execute(
        f"SELECT id FROM notes WHERE similarity(embed(body), embed('{query}')) > 0.3 ORDER BY id")
    assert [r[0] for r in notes.fetchall()] == expected
    assert len(notes.stats["stages"]) == 2


def test_two_model_predicates_with_a_two_call_conjunct(notes):
    notes.execute(
        f"SELECT id FROM notes WHERE classify(body, {LABELS}) = 'billing'"
        " AND similarity(embed(body), embed('charged twice')) > 0.5 ORDER BY id")
    assert [r[0] for r in notes.fetchall()] == [1, 8]
    classify_stage = next(s for s in notes.stats["stages"] if s["function"] == "classify")
    assert classify_stage["actual_selectivity"] is not None  # a one-call conjunct is measured


# --- result column names -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "names"),
    [
        ("SELECT classify('refund me', ['billing','bug'])",
         ["classify('refund me', ['billing', 'bug'])"]),
        ("SELECT upper(classify('x', ['a', 'b']))", ["upper(classify('x', ['a', 'b']))"]),
        ("SELECT 'x' AS body, similarity(embed('a'), embed('b'))",
         ["body", "similarity(embed('a'), embed('b'))"]),
        ("SELECT classify('x', ['a', 'b']) AS label, 1 + 2", ["label", "(1 + 2)"]),
        ("SELECT * FROM (SELECT classify('x', ['a', 'b']))", ["classify('x', ['a', 'b'])"]),
        ("SELECT classify('x', ['a', 'b']) UNION ALL SELECT classify('y', ['a', 'b'])",
         ["classify('x', ['a', 'b'])"]),
    ],
)
def test_an_unaliased_model_column_is_named_as_written(cur, sql, names):
    cur.execute(sql)
    assert _names(cur) == names


def test_named_columns_keep_every_query_shape_working(notes):
    call = f"classify(body, {LABELS})"
    notes.execute(f"SELECT {call}, count(*) FROM notes WHERE body IS NOT NULL"
                  f" GROUP BY {call} ORDER BY {call}")
    assert _names(notes) == ["classify(body, ['billing', 'bug report'])", "count_star()"]
    assert notes.fetchall() == [("billing", 4), ("bug report", 3)]
    notes.execute(f"SELECT DISTINCT {call} FROM notes WHERE body IS NOT NULL ORDER BY 1")
    assert notes.fetchall() == [("billing",), ("bug report",)]
    notes.execute(f"SELECT *, {call} FROM notes WHERE id = 2")
    assert _names(notes) == ["id", "body", "created", "team", _names(notes)[-1]]
    assert notes.fetchall()[0][-1] == "bug report"
    notes.execute(f"WITH t AS (SELECT id, {call} FROM notes) SELECT * FROM t WHERE id = 1")
    assert _names(notes) == ["id", "classify(body, ['billing', 'bug report'])"]


def test_a_media_markers_name_is_kept(cur, tmp_path):
    media = write_sample_media(tmp_path)
    cur.execute(f"SELECT classify(image(path), ['cat', 'rocket']) FROM"
                f" read_media('{media.root}/images/cat.jpg')")
    assert _names(cur) == ["classify(image(path), ['cat', 'rocket'])"]
    assert cur.fetchall() == [("cat",)]


# --- DELETE with a model predicate -------------------------------------------------------------


def test_delete_where_a_model_predicate(notes):
    notes.execute(f"DELETE FROM notes WHERE team = 'billing' AND classify(body, {LABELS})"
                  " = 'billing'")
    assert notes.rowcount == len(BILLING)
    assert notes.stats["stages"][0]["rows_in"] == 3  # the team predicate ran first
    notes.execute("SELECT id FROM notes ORDER BY id")
    assert [r[0] for r in notes.fetchall()] == [2, 4, 5, 7]


def test_delete_using_and_update_from_read_the_other_table(notes):
    notes.execute("CREATE TABLE flags (note_id INTEGER, reason VARCHAR)")
    notes.execute("INSERT INTO flags VALUES (2, 'my card was billed twice'),"
                  " (4, 'the screen freezes')")
    notes.execute(f"DELETE FROM notes USING flags WHERE notes.id = flags.note_id"
                  f" AND classify(flags.reason, {LABELS}) = 'bug report'")
    assert notes.rowcount == 1
    notes.execute("UPDATE notes SET team = classify(flags.reason, ['billing', 'bug report'])"
                  " FROM flags WHERE notes.id = flags.note_id")
    assert notes.rowcount == 1
    notes.execute("SELECT id, team FROM notes WHERE id IN (2, 4) ORDER BY id")
    assert notes.fetchall() == [(2, "billing")]


# --- parameters --------------------------------------------------------------------------------


def test_parameter_zero_is_refused_as_duckdb_refuses_it(cur):
    with pytest.raises(quarrydb.ProgrammingError, match=r"start at 1"):
        cur.execute("SELECT $0, classify('bill', ['billing', 'bug'])", ["first", "last"])


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("SELECT ?, classify('bill', ['billing', 'bug'])", ["x", "y"]),
        ("SELECT $2, classify('bill', ['billing', 'bug'])", ["x", "y"]),
        ("SELECT $a, classify('bill', ['billing', 'bug'])", {"a": 1, "b": 2}),
    ],
)
def test_parameters_no_placeholder_reads_are_refused(cur, sql, params):
    with pytest.raises(quarrydb.ProgrammingError, match=r"no placeholder reads parameter"):
        cur.execute(sql, params)
    with pytest.raises(quarrydb.ProgrammingError):  # as DuckDB's own path does
        cur.execute(sql.split(", classify")[0], params)


def test_parameters_are_numbered_and_named_as_duckdb_does(cur):
    cur.execute("SELECT $2, ?, classify($1, ['billing', 'bug'])", ["my bill is wrong", "b", "c"])
    assert cur.fetchall() == [("b", "c", "billing")]  # `?` follows the highest number so far
    cur.execute("SELECT $A, classify($text, ['billing', 'bug'])",
                {"a": "x", "text": "my bill is wrong"})
    assert cur.fetchall() == [("x", "billing")]
    with pytest.raises(quarrydb.NotSupportedError, match="cannot mix named"):
        cur.execute("SELECT $a, ?, classify('bill', ['billing', 'bug'])", {"a": 1})


def test_numpy_parameters(notes):
    notes.execute("SELECT embed('the app crashes')")
    probe = np.asarray(notes.fetchone()[0], dtype=np.float32)
    sql = ("SELECT id FROM notes WHERE body IS NOT NULL AND id < ?"
           " ORDER BY similarity(embed(body), ?) DESC LIMIT 1")
    notes.execute(sql, [np.int64(5), probe])
    assert notes.fetchall() == [(2,)]
    notes.execute(sql, [5, probe.tolist()])
    assert notes.fetchall() == [(2,)]



def test_a_parameter_cast_with_double_colons_beside_a_model_call(notes):
    """`?::INTEGER` is DuckDB's cast of a parameter; sqlglot read `?::` as one operator."""
    notes.execute(f"SELECT id, classify(body, {LABELS}) FROM notes WHERE id = ?::INTEGER"
                  " OR id = $2::BIGINT ORDER BY id", ["1", "2"])
    assert [row[0] for row in notes.fetchall()] == [1, 2]

@pytest.mark.parametrize("value", [0.5, float("nan"), float("inf"), [1.0, 2.5],
                                   {"k": 1, "j": [1, 2]}, (1, 2),
                                   uuid.UUID(int=7), datetime.timedelta(seconds=90)])
def test_parameter_values_keep_duckdbs_types_beside_a_model_call(notes, value):
    """Bound into the planner's SQL, a value is written as DuckDB would bind it: 0.5 as a
    DOUBLE (not a DECIMAL), NaN and infinity, a tuple as a list, a dict as a STRUCT."""
    plain = notes.execute("SELECT ? AS x, typeof(?) AS t", [value, value]).fetchall()
    notes.execute(f"SELECT classify(body, {LABELS}) AS c, ? AS x, typeof(?) AS t FROM notes"
                  " WHERE id = 1", [value, value])
    [(_, x, kind)] = notes.fetchall()
    assert kind == plain[0][1]
    assert (x != x and plain[0][0] != plain[0][0]) or x == plain[0][0]  # NaN is not NaN



def test_columns_named_like_the_engines_own_are_read_as_the_querys(cur):
    """The stage lookup is correlated with the query's columns: a column named as the
    lookup's key (__qk0 then) was read as the stage's, and every row got the first's value."""
    cur.execute("CREATE TABLE a AS SELECT * FROM (VALUES (1, 'refund my invoice'), (2, NULL),"
                " (3, 'the app crashes')) t(id, __qk0)")
    cur.execute("CREATE TABLE b AS SELECT id, __qk0 AS __qv, __qk0 AS __q FROM a")
    expected = [(1, "billing"), (2, None), (3, "bug report")]
    assert cur.execute(f"SELECT id, classify(__qk0, {LABELS}) FROM a ORDER BY id").fetchall() \
        == expected
    assert cur.execute(f"SELECT id, classify(__qv, {LABELS}) FROM b ORDER BY id").fetchall() \
        == expected
    assert cur.execute(f"SELECT id, classify(__q, {LABELS}) FROM b ORDER BY id").fetchall() \
        == expected
    with pytest.raises(quarrydb.ProgrammingError, match="a name the engine gives"):
        cur.execute(f"SELECT classify(__quarry_value, {LABELS}) FROM"
                    " (SELECT 'refund' AS __quarry_value)")

def test_stage_figures_never_count_negative_cache_hits(notes):
    notes.execute(f"SELECT id FROM notes WHERE classify(body, {LABELS}) = 'billing'"
                  " AND classify(body, ['billing', 'praise']) = 'billing'")
    assert all(stage["cache_hits"] >= 0 for stage in notes.stats["stages"])
    assert notes.stats["cache_hits"] >= 0
