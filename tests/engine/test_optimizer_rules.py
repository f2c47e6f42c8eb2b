"""Each optimizer rule: the plan it makes, the same answer as without it, fewer model calls.

`SET optimizer = off` is the baseline: every row of a call's sources goes to the model, with no
predicate pushed down, no deduplication and no cache.
"""

from __future__ import annotations

import pytest

from tests.conftest import TOPICS

LABELS = ", ".join(f"'{t}'" for t in TOPICS)


@pytest.fixture
def quotes(cur, labelled_quotes):
    cur.execute("CREATE TABLE quotes (id INTEGER, body VARCHAR, topic VARCHAR)")
    cur.executemany("INSERT INTO quotes VALUES (?, ?, ?)",
                    [(i, q, t) for i, (q, t) in enumerate(labelled_quotes)])
    return cur


def both_ways(con, sql):
    """(rows, stats) with the optimizer, then without, each on a fresh cursor and cache."""
    results = []
    for setting in ("on", "off"):
        cur = con.cursor()
        cur.execute(f"SET optimizer = {setting}")
        cur.execute("DELETE FROM _quarry.result_cache")
        cur.execute(sql)
        results.append((sorted(cur.fetchall(), key=repr), cur.stats))
    return results


def test_cheap_predicates_run_before_the_model(con, quotes):
    sql = f"SELECT id FROM quotes WHERE topic = 'food' AND classify(body, [{LABELS}]) = 'food'"
    (rows_on, on), (rows_off, off) = both_ways(con, sql)
    assert rows_on == rows_off
    assert on["model_inputs"] == 25 and off["model_inputs"] == 200
    assert off["model_inputs"] / on["model_inputs"] >= 5


def test_model_predicates_run_cheapest_per_rejected_row_first(con, quotes):
    # Written with the unselective predicate first: nearly every quote is 'words', not 'silence'.
    sql = (f"SELECT id FROM quotes WHERE classify(body, ['words', 'silence']) <> 'nothing'"
           f" AND classify(body, [{LABELS}]) = 'love'")
    (rows_on, on), (rows_off, off) = both_ways(con, sql)
    assert rows_on == rows_off
    first, second = on["stages"]
    assert "love" in str(first) or first["actual_selectivity"] < 0.3
    assert first["estimated_selectivity"] is not None
    assert second["rows_in"] == len(rows_on)  # the second sees only the first's survivors
    assert on["model_inputs"] < off["model_inputs"] * 0.7


def test_the_same_call_everywhere_is_one_stage(con, quotes):
    call = f"classify(body, [{LABELS}])"
    sql = f"SELECT id, {call} FROM quotes WHERE {call} = 'science' ORDER BY {call}, id"
    (rows_on, on), (rows_off, off) = both_ways(con, sql)
    assert rows_on == rows_off
    assert len(on["stages"]) == 1 and len(off["stages"]) == 3
    assert on["model_inputs"] == 200 and off["model_inputs"] == 600


def test_limit_stops_once_enough_rows_qualify(con, quotes):
    sql = f"SELECT id, body FROM quotes WHERE classify(body, [{LABELS}]) = 'love' LIMIT 3"
    cur = con.cursor()
    cur.execute(sql)
    rows = cur.fetchall()
    assert len(rows) == 3
    assert cur.stats["stages"][0]["stopped_early"] is True
    assert cur.stats["model_inputs"] < 200  # chunks of 16, 32, 64, ... until 3 rows passed
    ids = ", ".join(str(r[0]) for r in rows)
    cur.execute(f"SELECT DISTINCT classify(body, [{LABELS}]) FROM quotes WHERE id IN ({ids})")
    assert cur.fetchall() == [("love",)]  # every row returned really qualifies
    off = con.cursor()
    off.execute("SET optimizer = off")
    off.execute(sql)
    assert len(off.fetchall()) == 3 and off.stats["model_inputs"] == 200


def test_limit_rule_does_not_apply_where_null_could_pass(con, quotes):
    cur = con.cursor()
    cur.execute(f"SELECT id FROM quotes WHERE classify(body, [{LABELS}]) IS DISTINCT FROM 'love'"
                " LIMIT 3")
    assert len(cur.fetchall()) == 3
    assert cur.stats["stages"][0]["stopped_early"] is False


def test_semantic_join_classifies_each_side_once(con):
    cur = con.cursor()
    cur.execute("CREATE TABLE tickets AS SELECT * FROM (VALUES (1, 'my invoice total is wrong'),"
                " (2, 'the app crashes at login'), (3, 'please refund my payment'),"
                " (4, 'error 500 when saving')) t(id, x)")
    cur.execute("CREATE TABLE teams AS SELECT * FROM (VALUES ('billing desk', 'charges and"
                " refunds'), ('engineering', 'software bugs and errors')) t(team, y)")
    sql = ("SELECT id, team FROM tickets a JOIN teams b ON classify(a.x, ['billing', 'bug'])"
           " = classify(b.y, ['billing', 'bug'])")
    (rows_on, on), (rows_off, off) = both_ways(con, sql)
    assert rows_on == rows_off == [(1, "billing desk"), (2, "engineering"), (3, "billing desk"),
                                   (4, "engineering")]
    assert on["model_inputs"] == 4 + 2  # n + m
    assert off["model_inputs"] == 2 * 4 * 2  # both sides of every pair


def test_similarity_join_embeds_each_side_once(con):
    cur = con.cursor()
    cur.execute("CREATE TABLE a AS SELECT * FROM (VALUES ('a cat sleeps on the sofa'),"
                " ('stocks fell sharply')) t(x)")
    cur.execute("CREATE TABLE b AS SELECT * FROM (VALUES ('a kitten naps on a couch'),"
                " ('the market dropped'), ('it rained all day')) t(y)")
    cur.execute("SELECT a.x, b.y FROM a JOIN b ON similarity(embed(a.x), embed(b.y)) > 0.5"
                " ORDER BY 1")
    assert cur.fetchall() == [("a cat sleeps on the sofa", "a kitten naps on a couch"),
                              ("stocks fell sharply", "the market dropped")]
    assert cur.stats["model_inputs"] == 5


def test_explain_analyze_reports_each_stage(con, quotes):
    cur = con.cursor()
    cur.execute(f"EXPLAIN ANALYZE SELECT id FROM quotes WHERE topic <> 'love'"
                f" AND classify(body, [{LABELS}]) = 'food'")
    stage = dict(cur.fetchall())["model stage 1"]
    for figure in ["rows_in=175", "distinct_inputs=175", "model_inputs=175", "batches=",
                   "seconds_model=", "seconds_input_query=", "actual_selectivity="]:
        assert figure in stage
    assert cur.stats["model_inputs"] == 175


def test_progress_callback_sees_every_stage(con, quotes):
    cur = con.cursor()
    seen = []
    cur.set_progress(lambda stage, done, total: seen.append((stage, done, total)))
    cur.execute(f"SELECT classify(body, [{LABELS}]) FROM quotes")
    assert seen[-1] == ("stage 1: classify()", 200, 200)
    assert [d for _, d, _ in seen] == sorted(d for _, d, _ in seen)


def test_embedding_proxy_decides_clear_cases_within_its_recall(con, quotes):
    cur = con.cursor()
    cur.execute("SELECT count(embed(body)) FROM quotes")  # cached embeddings, as from an index
    sql = f"SELECT id FROM quotes WHERE classify(body, [{LABELS}]) = 'food'"
    cur.execute(sql + " WITH (proxy = 'embedding', recall = 0.9)")
    with_proxy = {r[0] for r in cur.fetchall()}
    proxy = cur.stats["stages"][0]["proxy"]
    assert proxy["embedding_model_inputs"] == 0  # the embeddings came from the cache
    assert proxy["sent_to_model"] < 200 and proxy["accepted"] + proxy["rejected"] > 0
    assert cur.stats["stages"][0]["model_inputs"] == proxy["sent_to_model"]
    full = con.cursor()
    full.execute(sql)
    truth = {r[0] for r in full.fetchall()}
    recall = len(with_proxy & truth) / len(truth)
    precision = len(with_proxy & truth) / max(len(with_proxy), 1)
    assert recall >= 0.8 and precision >= 0.9, (recall, precision, proxy)


def test_proxy_clause_errors(cur):
    import quarrydb

    with pytest.raises(quarrydb.ProgrammingError, match="unknown proxy"):
        cur.execute("SELECT 1 WHERE classify('x', ['a', 'b']) = 'a' WITH (proxy = 'magic')")
