"""Query shapes around an index search: each gives the answer it gives without the index
(DuckDB's), whether the index answers it or leaves it to DuckDB, and never a raw error."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import quarrydb

ROWS, DIM = 2000, 8


def make_table(cur, name: str = "items", seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((ROWS, DIM)).astype(np.float32)
    cur.register("src", pa.table({"id": pa.array(range(ROWS)),
                                  "v": pa.array(list(vectors), pa.list_(pa.float32(), DIM))}))
    cur.execute(f"CREATE TABLE {name} AS SELECT id, id % 100 AS bucket, v FROM src")
    cur.unregister("src")
    return vectors


def literal(vector) -> str:
    return "[" + ", ".join(f"{x:.7f}" for x in vector) + f"]::FLOAT[{len(vector)}]"


PROBE = literal(np.random.default_rng(1).standard_normal(DIM))


def answer(cur, sql: str, params=None) -> list:
    cur.execute(sql, params) if params is not None else cur.execute(sql)
    return cur.fetchall()


def index_used(cur, sql: str) -> bool:
    cur.execute(f"EXPLAIN {sql}")
    return "index scan" in dict(cur.fetchall())


def same_with_index(cur, sql: str, index: str = "CREATE INDEX iv ON items USING faiss (v)"
                    " WITH (kind = 'flat')") -> bool:
    """Whether the index uses `sql`: after checking that its answer is DuckDB's."""
    expected = answer(cur, sql)
    cur.execute(index)
    assert answer(cur, sql) == expected
    return index_used(cur, sql)


def test_a_table_of_another_schema_is_not_answered_by_mains_index(cur):
    make_table(cur)
    cur.execute("CREATE SCHEMA s")
    make_table(cur, "s.items", seed=5)
    cur.execute("UPDATE s.items SET id = id + 100000")
    other = f"SELECT id FROM s.items ORDER BY similarity(v, {PROBE}) DESC LIMIT 5"
    assert not same_with_index(cur, other)
    main = f"SELECT id FROM main.items ORDER BY similarity(v, {PROBE}) DESC LIMIT 5"
    assert index_used(cur, main)
    cur.execute("CREATE INDEX sv ON s.items USING faiss (v) WITH (kind = 'flat')")
    assert index_used(cur, other)
    assert all(r[0] >= 100000 for r in answer(cur, other))
    cur.execute("UPDATE main.items SET v = [0, 0, 0, 0, 0, 0, 0, 1]::FLOAT[8] WHERE id = 7")
    probe = literal(np.eye(DIM)[DIM - 1])
    assert answer(cur, f"SELECT id FROM main.items ORDER BY similarity(v, {probe}) DESC"
                       " LIMIT 1") == [(7,)]


@pytest.mark.parametrize("sample", ["USING SAMPLE 10 ROWS", "TABLESAMPLE reservoir(20 ROWS)"])
def test_a_sample_is_searched_as_a_sample(cur, sample):
    make_table(cur)
    cur.execute("CREATE INDEX iv ON items USING faiss (v) WITH (kind = 'flat')")
    sql = f"SELECT id FROM items {sample} ORDER BY similarity(v, {PROBE}) DESC LIMIT 5"
    assert not index_used(cur, sql)
    assert len(answer(cur, sql)) == 5


def test_nulls_first_puts_the_rows_without_a_vector_first(cur):
    make_table(cur)
    cur.execute("UPDATE items SET v = NULL WHERE id IN (7, 8)")
    sql = f"SELECT id FROM items ORDER BY similarity(v, {PROBE}) DESC NULLS FIRST LIMIT 3"
    assert not same_with_index(cur, sql)
    assert [r[0] for r in answer(cur, sql)][:2] == [7, 8]


def test_a_cte_named_like_the_table_is_what_from_reads(cur):
    make_table(cur)
    sql = (f"WITH items AS (SELECT * FROM main.items WHERE id < 300) SELECT id FROM items"
           f" ORDER BY similarity(v, {PROBE}) DESC LIMIT 3")
    assert not same_with_index(cur, sql)


def test_a_filter_may_use_the_statements_ctes_and_aliases(cur):
    make_table(cur)
    with_cte = (f"WITH few AS (SELECT id FROM items WHERE bucket < 20) SELECT id FROM items"
                f" WHERE id IN (SELECT id FROM few) ORDER BY similarity(v, {PROBE}) DESC"
                f" LIMIT 5")
    assert same_with_index(cur, with_cte)
    alias = (f"SELECT id, bucket * 2 AS b2 FROM items WHERE b2 < 10"
             f" ORDER BY similarity(v, {PROBE}) DESC LIMIT 3")
    assert len(answer(cur, alias)) == 3  # DuckDB binds the alias; the index leaves it to it
    cur.execute("DROP INDEX iv")
    expected = answer(cur, alias)
    cur.execute("CREATE INDEX iv ON items USING faiss (v) WITH (kind = 'flat')")
    assert answer(cur, alias) == expected


@pytest.mark.parametrize("probe", ["[1, 2, 3]::FLOAT[3]", "NULL", "NULL::FLOAT[8]",
                                   "[0, 0, 0, 0, 0, 0, 0, 0]::FLOAT[8]"])
def test_a_probe_the_index_cannot_rank_by_gets_duckdbs_answer(cur, probe):
    make_table(cur)
    sql = f"SELECT id FROM items ORDER BY similarity(v, {probe}) DESC LIMIT 3"
    try:
        expected = answer(cur, sql)
    except quarrydb.Error as exc:
        expected = type(exc)
    cur.execute("CREATE INDEX iv ON items USING faiss (v) WITH (kind = 'flat')")
    if isinstance(expected, list):
        assert answer(cur, sql) == expected
    else:
        with pytest.raises(expected):
            answer(cur, sql)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_a_limit_beyond_the_table_returns_every_row(cur, kind):
    make_table(cur)
    cur.execute(f"CREATE INDEX iv ON items USING faiss (v) WITH (kind = '{kind}')")
    rows = answer(cur, f"SELECT id FROM items ORDER BY similarity(v, {PROBE}) DESC"
                       " LIMIT 3000000000")
    assert sorted(r[0] for r in rows) == list(range(ROWS))


def test_vectors_too_long_for_a_float32_length_are_ranked_by_their_direction(cur):
    make_table(cur)
    cur.execute("UPDATE items SET v = [1e20, 1e20, 0, 0, 0, 0, 0, 0]::FLOAT[8] WHERE id = 40")
    sql = ("SELECT id FROM items ORDER BY similarity(v, [1, 1, 0, 0, 0, 0, 0, 0]::FLOAT[8])"
           " DESC LIMIT 1")
    assert same_with_index(cur, sql)
    assert answer(cur, sql) == [(40,)]


def test_vectors_of_no_direction_rank_last_with_or_without_the_index(cur):
    """A zero vector (or one with a NaN) has no cosine with anything: similarity() is NULL,
    and such rows come last, where DuckDB's own NaN would put them first."""
    make_table(cur)
    cur.execute("UPDATE items SET v = [0, 0, 0, 0, 0, 0, 0, 0]::FLOAT[8] WHERE id = 3")
    cur.execute("UPDATE items SET v = ['nan'::FLOAT, 1, 0, 0, 0, 0, 0, 0]::FLOAT[8] WHERE id = 4")
    assert answer(cur, "SELECT similarity(v, v) FROM items WHERE id IN (3, 4)") == [(None,)] * 2
    top = f"SELECT id FROM items ORDER BY similarity(v, {PROBE}) DESC LIMIT 5"
    assert same_with_index(cur, top)
    assert {3, 4}.isdisjoint(r[0] for r in answer(cur, top))
    every = f"SELECT id FROM items ORDER BY similarity(v, {PROBE}) DESC LIMIT {ROWS}"
    cur.execute("DROP INDEX iv")
    expected = [r[0] for r in answer(cur, every)]
    cur.execute("CREATE INDEX iv ON items USING faiss (v) WITH (kind = 'flat')")
    found = [r[0] for r in answer(cur, every)]  # reaches scores under 0: DuckDB orders
    assert found[:-2] == expected[:-2] and set(found[-2:]) == {3, 4}


@pytest.mark.parametrize("upsert", [
    "INSERT INTO items VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET v = excluded.v",
    "INSERT OR REPLACE INTO items VALUES ($1, $2)"])
def test_an_upsert_with_parameters_replaces_the_rows_vector(cur, upsert):
    vectors = np.random.default_rng(0).standard_normal((ROWS, DIM)).astype(np.float32)
    cur.execute(f"CREATE TABLE items (id INTEGER PRIMARY KEY, v FLOAT[{DIM}])")
    cur.executemany("INSERT INTO items VALUES (?, ?)",
                    [(i, vectors[i].tolist()) for i in range(200)])
    cur.execute("CREATE INDEX iv ON items USING faiss (v) WITH (kind = 'flat')")
    probe = vectors[20]
    search = f"SELECT id FROM items ORDER BY similarity(v, {literal(probe)}) DESC LIMIT 3"
    assert answer(cur, search)[0] == (20,)
    cur.execute(upsert, [20, (-probe).tolist()])
    found = answer(cur, search)
    assert len(found) == 3 and (20,) not in found
    cur.execute("SHOW INDEXES")
    assert cur.fetchall()[0][5] == 200


def test_explain_of_a_query_the_index_does_not_take_is_duckdbs_plan(cur, caplog):
    make_table(cur)
    cur.execute("CREATE INDEX iv ON items USING faiss (v) WITH (kind = 'flat')")
    cur.execute("EXPLAIN SELECT id FROM items ORDER BY similarity(v, v) DESC LIMIT 3")
    plan = dict(cur.fetchall())
    assert "index scan" not in plan and "physical_plan" in plan
    assert not [r for r in caplog.records if r.name.startswith("sqlglot")]  # nothing to warn


@pytest.mark.parametrize("as_numpy", [False, True])
def test_a_probe_given_as_a_parameter_is_answered_by_the_index(cur, as_numpy):
    make_table(cur)
    vector = np.random.default_rng(1).standard_normal(DIM).astype(np.float32)
    probe = vector if as_numpy else vector.tolist()
    sql = "SELECT id FROM items WHERE bucket < ? ORDER BY similarity(v, ?) DESC LIMIT ?"
    expected = answer(cur, sql, [90, probe, 5])
    cur.execute("CREATE INDEX iv ON items USING faiss (v) WITH (kind = 'hnsw')")
    cur.execute(f"EXPLAIN {sql}", [90, probe, 5])
    assert "iv (hnsw" in dict(cur.fetchall())["index scan"]
    assert answer(cur, sql, [90, probe, 5]) == expected
    named = "SELECT id FROM items ORDER BY similarity(v, $probe) DESC LIMIT 3"
    assert answer(cur, named, {"probe": probe}) == answer(cur, named.replace(
        "similarity(v, $probe)", "similarity(v, $probe) + 0"), {"probe": probe})


@pytest.mark.parametrize("limit", ["LIMIT 10%", "LIMIT 10 PERCENT"])
def test_a_limit_in_percent_is_not_k_rows(cur, limit):
    """Before, the index read LIMIT 10% as LIMIT 10, then DuckDB kept 10% of those: 1 row."""
    sql = f"SELECT id FROM items ORDER BY similarity(v, {PROBE}) DESC {limit}"
    make_table(cur)
    assert not same_with_index(cur, sql)
    assert len(answer(cur, sql)) == ROWS // 10


def test_a_random_filter_is_not_searched_with_the_index(cur):
    """The index counted the rows random() kept with one draw, DuckDB kept others with the
    next: fewer than k rows came back."""
    make_table(cur)
    cur.execute("CREATE INDEX iv ON items USING faiss (v) WITH (kind = 'flat')")
    sql = f"SELECT id FROM items WHERE random() < 0.5 ORDER BY similarity(v, {PROBE}) DESC" \
          " LIMIT 10"
    assert not index_used(cur, sql)
    assert all(len(answer(cur, sql)) == 10 for _ in range(5))


@pytest.mark.parametrize("probe", ["'[0.5, -0.5, 0.5, -0.5, 0.5, -0.5, 0.5, -0.5]'", "'abc'",
                                   "{'a': 1}"])
def test_a_probe_of_another_type_is_cast_as_similarity_casts_it(cur, probe):
    """Before, a text or a struct as the probe was a raw ValueError / TypeError once an index
    existed; now the answer, or DuckDB's error, is the one without the index."""
    make_table(cur)
    sql = f"SELECT id FROM items ORDER BY similarity(v, {probe}) DESC LIMIT 3"
    try:
        expected = answer(cur, sql)
    except quarrydb.Error as exc:
        expected = (type(exc), str(exc).split("\n")[0])
    cur.execute("CREATE INDEX iv ON items USING faiss (v) WITH (kind = 'flat')")
    for params in (None, []):
        try:
            got = answer(cur, sql, params)
        except quarrydb.Error as exc:
            assert "LINE 1" not in str(exc)
            got = (type(exc), str(exc).split("\n")[0])
        assert got == expected


def test_a_probe_parameter_holding_a_null(cur):
    make_table(cur)
    cur.execute("CREATE INDEX iv ON items USING faiss (v) WITH (kind = 'flat')")
    with pytest.raises(quarrydb.ProgrammingError, match="can not contain NULL values"):
        answer(cur, "SELECT id FROM items ORDER BY similarity(v, ?) DESC LIMIT 3",
               [[0.5, None] + [0.5] * (DIM - 2)])


@pytest.mark.parametrize("setup, where", [
    ("CREATE MACRO coin() AS random() < 0.5", "WHERE coin()"),
    ("CREATE VIEW pick AS SELECT id FROM items WHERE random() < 0.5",
     "WHERE id IN (SELECT id FROM pick)"),
    ("", "WHERE id IN (SELECT id FROM items USING SAMPLE 50 PERCENT (bernoulli))"),
])
def test_a_filter_drawing_at_random_out_of_sight_still_gives_k_rows(cur, setup, where):
    """A macro, a view or a sample the WHERE reads draws again each time it is read: the
    rows the index found it to keep are not asked of it a second time (before: 3-8 rows)."""
    make_table(cur)
    if setup:
        cur.execute(setup)
    cur.execute("CREATE INDEX iv ON items USING faiss (v) WITH (kind = 'flat')")
    sql = f"SELECT id FROM items {where} ORDER BY similarity(v, {PROBE}) DESC LIMIT 10"
    assert index_used(cur, sql) == ("SAMPLE" not in where)  # in sight, as random(): exact
    assert [len(answer(cur, sql)) for _ in range(5)] == [10] * 5
