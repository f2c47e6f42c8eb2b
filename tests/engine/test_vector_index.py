"""FAISS indexes under SQL: filtered top-k never under-returns, changes are seen without a
rebuild, writes behind the index's back are repaired, and files are crash-safe."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

import quarrydb
from quarrydb.engine import index_scan
from quarrydb.engine.vector_index import IndexOptions, VectorIndex, one_openmp_thread

ROWS, DIM, K = 20_000, 32, 10
SELECTIVITIES = [0.001, 0.01, 0.1, 0.3, 0.5]


def make_vectors(cur, rows: int = ROWS, seed: int = 0) -> np.ndarray:
    """A table of random vectors; `bucket` in [0, 1000) gives any selectivity in steps of 0.1%."""
    vectors = np.random.default_rng(seed).standard_normal((rows, DIM)).astype(np.float32)
    import pyarrow as pa

    cur.register("src", pa.table({
        "id": pa.array(range(rows)), "v": pa.array(list(vectors), pa.list_(pa.float32()))}))
    cur.execute("CREATE TABLE items AS SELECT id, id % 1000 AS bucket, v FROM src")
    return vectors


def brute_force(vectors: np.ndarray, probe: np.ndarray, allowed: np.ndarray, k: int) -> list:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = unit @ (probe / np.linalg.norm(probe))
    ids = np.flatnonzero(allowed)
    return ids[np.argsort(-scores[ids], kind="stable")[:k]].tolist()


def top_k(cur, probe: np.ndarray, where: str = "", k: int = K) -> list[int]:
    vector = "[" + ", ".join(f"{x:.7f}" for x in probe) + "]::FLOAT[]"
    filter_ = f"WHERE {where}" if where else ""
    cur.execute(f"SELECT id FROM items {filter_} ORDER BY similarity(v, {vector}) DESC LIMIT {k}")
    return [r[0] for r in cur.fetchall()]


GATHERED = "exact over the matching rows' indexed vectors"
STRATEGIES = {"flat": {GATHERED, "widening search"},
              "ivf": {GATHERED, "filtered search"},
              "hnsw": {GATHERED, "filtered search", "widening search"}}


@pytest.fixture
def few_exact_rows(monkeypatch):
    """Below this many matching rows the index is skipped, below the other they are scored from
    the index's vectors: small here, so every path runs on 20,000 rows."""
    monkeypatch.setattr(index_scan, "EXACT_MAX_ROWS", 5)
    monkeypatch.setattr(index_scan, "GATHER_MAX_ROWS", 100)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_filtered_top_k_returns_exactly_min_k_matches(cur, kind, few_exact_rows):
    vectors = make_vectors(cur)
    cur.execute(f"CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = '{kind}')")
    rng = np.random.default_rng(1)
    recalls, strategies = [], set()
    for selectivity in SELECTIVITIES:
        cutoff = int(selectivity * 1000)
        allowed = (np.arange(ROWS) % 1000) < cutoff
        for _ in range(3):
            probe = rng.standard_normal(DIM).astype(np.float32)
            got = top_k(cur, probe, f"bucket < {cutoff}")
            expected = brute_force(vectors, probe, allowed, K)
            assert len(got) == min(K, int(allowed.sum()))
            assert all(allowed[i] for i in got)
            if kind == "flat":
                assert got == expected
            recalls.append(len(set(got) & set(expected)) / len(expected))
        vector = "[" + ", ".join("0.1" for _ in range(DIM)) + "]::FLOAT[]"
        cur.execute(f"EXPLAIN SELECT id FROM items WHERE bucket < {cutoff}"
                    f" ORDER BY similarity(v, {vector}) DESC LIMIT {K}")
        strategies.add(dict(cur.fetchall())["index scan"].split("strategy ")[1].split(",")[0])
    assert np.mean(recalls) >= (1.0 if kind == "flat" else 0.9)
    assert {s.split(" -> ")[0] for s in strategies} == STRATEGIES[kind]  # "-> exact": short


def test_unfiltered_search_and_distance_form(cur):
    vectors = make_vectors(cur, 3000)
    cur.execute("CREATE INDEX item_l2 ON items USING faiss (v) WITH (kind = 'flat', metric = 'l2')")
    probe = vectors[42] + 0.01
    vector = "[" + ", ".join(f"{x:.7f}" for x in probe) + "]::FLOAT[]"
    cur.execute(f"EXPLAIN SELECT id FROM items ORDER BY distance(v, {vector}) LIMIT 3")
    assert "item_l2" in dict(cur.fetchall())["index scan"]
    cur.execute(f"SELECT id FROM items ORDER BY distance(v, {vector}) LIMIT 3")
    expected = np.argsort(np.linalg.norm(vectors - probe, axis=1))[:3].tolist()
    assert [r[0] for r in cur.fetchall()] == expected



def test_windows_and_unnest_over_a_search_see_every_row_not_the_candidates(cur):
    """A window (or QUALIFY) is computed before ORDER BY ... LIMIT, over every row, and an
    unnest in the SELECT list makes rows of its own: such queries run without the index."""
    vectors = make_vectors(cur, 3000)
    cur.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'flat')")
    probe = np.random.default_rng(8).standard_normal(DIM).astype(np.float32)
    vector = "[" + ", ".join(f"{x:.7f}" for x in probe) + "]::FLOAT[]"
    best = brute_force(vectors, probe, np.ones(3000, bool), 3)
    order = f"ORDER BY similarity(v, {vector}) DESC LIMIT 3"
    cur.execute(f"SELECT id, count(*) OVER () AS n, row_number() OVER (ORDER BY id) AS r"
                f" FROM items {order}")
    assert cur.fetchall() == [(i, 3000, i + 1) for i in best]
    cur.execute(f"SELECT id FROM items QUALIFY row_number() OVER (ORDER BY id) > 10 {order}")
    assert [r[0] for r in cur.fetchall()] == brute_force(vectors, probe, np.arange(3000) >= 10, 3)
    cur.execute(f"EXPLAIN SELECT id, count(*) OVER () FROM items {order}")
    assert "index scan" not in dict(cur.fetchall())
    skip_best = f"unnest(CASE WHEN id = {best[0]} THEN [] ELSE [id] END)"  # makes no row for it
    cur.execute(f"SELECT {skip_best} AS id FROM items {order}")
    assert [r[0] for r in cur.fetchall()] == brute_force(vectors, probe, np.ones(3000, bool), 4)[1:]

def test_candidates_come_in_the_index_order_without_scoring_again(cur):
    vectors = make_vectors(cur, 3000)
    cur.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'flat')")
    probe = np.random.default_rng(3).standard_normal(DIM).astype(np.float32)
    vector = "[" + ", ".join(f"{x:.7f}" for x in probe) + "]::FLOAT[]"
    query = f"SELECT id FROM items ORDER BY similarity(v, {vector}) DESC LIMIT {K}"
    cur.execute(f"EXPLAIN {query}")
    plan = dict(cur.fetchall())
    assert "ordered by the index's exact scores" in plan["index scan"]
    assert "cosine" not in plan["physical_plan"].lower()  # DuckDB reads no vector to score
    cur.execute(query)
    assert [r[0] for r in cur.fetchall()] == brute_force(vectors, probe, np.ones(3000, bool), K)
    cur.execute(f"SELECT id, similarity(v, {vector}) AS score FROM items"
                f" ORDER BY similarity(v, {vector}) DESC LIMIT {K}")  # scores asked for: DuckDB's
    scores = [r[1] for r in cur.fetchall()]
    assert scores == sorted(scores, reverse=True) and len(scores) == K


def test_a_search_repeated_with_other_vectors_and_parameters_answers_each(cur, few_exact_rows):
    """Repeated with other vectors, a search has the same text (vectors set aside), and its
    printed SQL is kept; parameters are bound into the tree, so they never come from it."""
    vectors = make_vectors(cur, 3000)
    cur.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'flat')")
    rng = np.random.default_rng(5)
    every_row = np.ones(3000, dtype=bool)
    for _ in range(3):
        probe = rng.standard_normal(DIM).astype(np.float32)
        assert top_k(cur, probe) == brute_force(vectors, probe, every_row, K)
        assert top_k(cur, probe, "bucket < 500") == brute_force(
            vectors, probe, np.arange(3000) % 1000 < 500, K)
    vector = "[" + ", ".join(f"{x:.7f}" for x in probe) + "]::FLOAT[]"
    for cutoff in (300, 600, 300):
        cur.execute(f"SELECT id FROM items WHERE bucket < ? ORDER BY similarity(v, {vector})"
                    f" DESC LIMIT {K}", [cutoff])
        assert [r[0] for r in cur.fetchall()] == brute_force(
            vectors, probe, np.arange(3000) % 1000 < cutoff, K)


def test_a_kept_search_follows_its_index_and_is_never_changed_by_a_run(cur):
    """A search's parse and index match are kept by its text (vectors set aside): dropping or
    replacing the index is seen, and a run that restricts the statement (here: one calling a
    model, which the planner runs) leaves the kept parse as it was for the next vectors."""
    vectors = make_vectors(cur, 3000)
    cur.execute("ALTER TABLE items ADD COLUMN body VARCHAR DEFAULT 'note'")
    cur.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'flat')")
    rng = np.random.default_rng(6)
    every_row = np.ones(3000, dtype=bool)
    for _ in range(2):
        probe = rng.standard_normal(DIM).astype(np.float32)
        vector = "[" + ", ".join(f"{x:.7f}" for x in probe) + "]::FLOAT[]"
        cur.execute(f"SELECT id, len(embed(body)) FROM items ORDER BY similarity(v, {vector})"
                    f" DESC LIMIT 3")
        assert [r[0] for r in cur.fetchall()] == brute_force(vectors, probe, every_row, 3)
    probe = rng.standard_normal(DIM).astype(np.float32)
    expected = brute_force(vectors, probe, every_row, K)
    assert top_k(cur, probe) == expected
    cur.execute("DROP INDEX item_vec")
    assert top_k(cur, probe) == expected  # DuckDB's answer: no index named item_vec to ask
    cur.execute("CREATE INDEX item_hnsw ON items USING faiss (v) WITH (kind = 'hnsw')")
    assert top_k(cur, probe) == expected
    cur.execute(f"EXPLAIN SELECT id FROM items ORDER BY similarity(v, {vector}) DESC LIMIT {K}")
    assert "item_hnsw" in dict(cur.fetchall())["index scan"]


@pytest.mark.parametrize("function", ["list_inner_product", "list_dot_product"])
def test_an_inner_product_index_answers_inner_products_not_cosine(cur, function):
    """An ip index ranks by inner product: it answers ORDER BY <inner product> DESC. Cosine
    similarity() on vectors of many lengths ranks otherwise: it runs without that index."""
    vectors = make_vectors(cur, 3000) * np.linspace(0.1, 10, 3000, dtype=np.float32)[:, None]
    cur.execute("UPDATE items SET v = list_transform(v, lambda x: x * (0.1 + id * 9.9 / 2999))")
    cur.execute("CREATE INDEX item_ip ON items USING faiss (v) WITH (kind = 'flat', metric = 'ip')")
    probe = np.random.default_rng(4).standard_normal(DIM).astype(np.float32)
    vector = "[" + ", ".join(f"{x:.7f}" for x in probe) + "]::FLOAT[]"
    inner = f"SELECT id FROM items ORDER BY {function}(v, {vector}) DESC LIMIT {K}"
    cur.execute(f"EXPLAIN {inner}")
    assert "item_ip" in dict(cur.fetchall())["index scan"]
    cur.execute(inner)
    assert [r[0] for r in cur.fetchall()] == np.argsort(-(vectors @ probe))[:K].tolist()
    arrays_only = inner.replace(function, "array_inner_product")  # DuckDB: lists are refused
    with pytest.raises(quarrydb.ProgrammingError, match="array_inner_product"):
        cur.execute(arrays_only)
    cosine = f"SELECT id FROM items ORDER BY similarity(v, {vector}) DESC LIMIT {K}"
    cur.execute(f"EXPLAIN {cosine}")
    assert "index scan" not in dict(cur.fetchall())
    assert top_k(cur, probe) == brute_force(vectors, probe, np.ones(3000, dtype=bool), K)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_insert_update_delete_are_seen_without_a_rebuild(cur, kind, few_exact_rows):
    vectors = make_vectors(cur, 3000)
    cur.execute(f"CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = '{kind}')")
    probe = np.ones(DIM, dtype=np.float32)
    near = "[" + ", ".join("1.0" for _ in range(DIM)) + "]::FLOAT[]"
    cur.execute(f"INSERT INTO items VALUES (99999, 7, {near})")
    assert top_k(cur, probe, k=1) == [99999]
    cur.execute("UPDATE items SET v = list_transform(v, lambda x: -x) WHERE id = 99999")
    assert 99999 not in top_k(cur, probe, k=5)
    far_away = int(np.argmin(vectors @ probe))
    cur.execute(f"UPDATE items SET v = {near} WHERE id = {far_away}")
    assert top_k(cur, probe, k=1) == [far_away]
    cur.execute(f"DELETE FROM items WHERE id = {far_away}")
    assert far_away not in top_k(cur, probe, k=20)
    cur.execute("SHOW INDEXES")
    assert cur.fetchall()[0][5] == 3000  # rows indexed now: 3000 + 1 inserted - 1 deleted
    cur.execute("DELETE FROM items WHERE id < 100")  # every later row must keep its own vector
    for row in (150, 1500, 2999):
        assert top_k(cur, vectors[row], k=1) == [row]


def test_index_on_a_model_function_uses_the_cache_to_rebuild(tmp_path):
    path = tmp_path / "notes.quarry"
    bodies = ["refund my payment please", "the app crashes on start", "I was charged twice",
              "login button does nothing", "invoice amount is wrong", "great new design"]
    with quarrydb.connect(path) as con:
        cur = con.cursor()
        cur.execute("CREATE TABLE notes (id INTEGER, body VARCHAR)")
        cur.executemany("INSERT INTO notes VALUES (?, ?)", list(enumerate(bodies)))
        cur.execute("CREATE INDEX note_vec ON notes USING faiss (embed(body))")
        query = ("SELECT id FROM notes ORDER BY similarity(embed(body), embed('money back'))"
                 " DESC LIMIT 2")
        cur.execute(query)
        expected = cur.fetchall()
        cur.execute("SELECT count(*) FROM _quarry.result_cache")
        cached = cur.fetchone()[0]
    (path / "indexes" / "note_vec" / "index.faiss").write_bytes(b"damaged")
    with quarrydb.connect(path) as con:
        cur = con.cursor()
        cur.execute(query)
        assert cur.fetchall() == expected
        cur.execute("SELECT count(*) FROM _quarry.result_cache")
        assert cur.fetchone()[0] == cached  # rebuilt from cached embeddings: no model ran


def test_changes_made_by_plain_duckdb_are_detected_and_repaired(tmp_path, few_exact_rows):
    import duckdb

    path = tmp_path / "items.quarry"
    with quarrydb.connect(path) as con:
        cur = con.cursor()
        make_vectors(cur, 3000)
        cur.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'flat')")
    plain = duckdb.connect(str(path / "quarry.duckdb"))
    near = "[" + ", ".join("1.0" for _ in range(DIM)) + "]::FLOAT[]"
    plain.execute(f"INSERT INTO items VALUES (5555, 1, {near})")
    plain.execute("DELETE FROM items WHERE id < 100")
    plain.close()
    with quarrydb.connect(path) as con:
        cur = con.cursor()
        probe = np.ones(DIM, dtype=np.float32)
        got = top_k(cur, probe, k=50)
        assert got[0] == 5555
        assert all(i >= 100 for i in got)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_changes_saved_beside_the_snapshot_are_replayed_on_reopen(tmp_path, kind, monkeypatch):
    """Inserts and deletes are saved as small files beside the index; reopened, the index is
    the snapshot with them replayed (IVF takes inserts into its lists, the others hold them
    beside), not a rebuild."""
    from quarrydb.engine.vector_catalog import VectorCatalog

    path = tmp_path / "items.quarry"
    with quarrydb.connect(path) as con:
        cur = con.cursor()
        vectors = make_vectors(cur, 3000)
        cur.execute(f"CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = '{kind}')")
        extra = np.random.default_rng(9).standard_normal((20, DIM)).astype(np.float32)
        for i, vector in enumerate(extra):
            cur.execute("INSERT INTO items VALUES (?, ?, ?)", [3000 + i, i, vector.tolist()])
            top_k(cur, vector, k=1)  # each insert is synced (and saved) by the next search
        cur.execute("DELETE FROM items WHERE id < 30")  # 50 changes: under 2% (HNSW's share)
        top_k(cur, vectors[200], k=1)
        assert len(list((path / "indexes" / "item_vec").glob("delta-*"))) > 1
    rebuilt = []
    rebuild = VectorCatalog._rebuild
    monkeypatch.setattr(VectorCatalog, "_rebuild",
                        lambda self, info: rebuilt.append(info.name) or rebuild(self, info))
    with quarrydb.connect(path) as con:
        cur = con.cursor()
        for i, vector in enumerate(extra):
            assert top_k(cur, vector, k=1) == [3000 + i]
        for row in (30, 1500, 2999):
            assert top_k(cur, vectors[row], k=1) == [row]
        assert not set(top_k(cur, vectors[20], k=20)) & set(range(30))
    assert rebuilt == []


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_many_small_changes_are_folded_into_one_file_not_a_snapshot_rewrite(tmp_path, kind,
                                                                          monkeypatch):
    """Past MAX_DELTAS small changes the files beside the snapshot are folded into one (an id
    added and later deleted in neither list), not the whole snapshot rewritten: single-row
    INSERTs paid a snapshot rewrite every 32 rows. Reopened, the index replays the one file."""
    from quarrydb.engine import vector_catalog

    monkeypatch.setattr(vector_catalog, "MAX_DELTAS", 3)
    path = tmp_path / "items.quarry"
    extra = np.random.default_rng(9).standard_normal((10, DIM)).astype(np.float32)
    with quarrydb.connect(path) as con:
        cur = con.cursor()
        vectors = make_vectors(cur, 3000)
        cur.execute(f"CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = '{kind}')")
        snapshot = cur._session.vectors.info("item_vec").checksum
        for i, vector in enumerate(extra):
            cur.execute(f"INSERT INTO items VALUES ({3000 + i}, {i}, {vector.tolist()}::FLOAT[])")
            if i == 5:
                cur.execute("DELETE FROM items WHERE id = 3002 OR id < 10")
        info = cur._session.vectors.info("item_vec")
        assert info.checksum == snapshot  # the snapshot was not rewritten
        assert len(info.deltas) <= 3 and any("merged" in d[0] for d in info.deltas)
        folder = path / "indexes" / "item_vec"
        assert {p.name for p in folder.glob("delta-*")} == {d[0] for d in info.deltas}
    rebuilt = []
    rebuild = vector_catalog.VectorCatalog._rebuild
    monkeypatch.setattr(vector_catalog.VectorCatalog, "_rebuild",
                        lambda self, info: rebuilt.append(info.name) or rebuild(self, info))
    with quarrydb.connect(path) as con:
        cur = con.cursor()
        for i, vector in enumerate(extra):
            if i != 2:
                assert top_k(cur, vector, k=1) == [3000 + i]
        assert 3002 not in top_k(cur, extra[2], k=20)
        for row in (10, 1500, 2999):
            assert top_k(cur, vectors[row], k=1) == [row]
        assert not set(top_k(cur, vectors[5], k=20)) & set(range(10))
        assert con._database.loaded_indexes["item_vec"].size == 3000 - 10 + 9
    assert rebuilt == []


def test_large_changes_rewrite_the_snapshot_where_a_fold_would_cost_as_much(tmp_path,
                                                                           monkeypatch):
    """Past MAX_DELTAS changes that hold more than FOLD_MAX_SHARE of the rows (1% INSERTs at
    1M rows), folding them would write near as much as the snapshot: it is rewritten."""
    import pyarrow as pa

    from quarrydb.engine import vector_catalog

    monkeypatch.setattr(vector_catalog, "MAX_DELTAS", 3)
    con = quarrydb.connect(tmp_path / "items.quarry")
    cur = con.cursor()
    vectors = make_vectors(cur, 3000)
    cur.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'flat')")
    snapshot = cur._session.vectors.info("item_vec").checksum
    extra = np.random.default_rng(11).standard_normal((600, DIM)).astype(np.float32)
    for batch in range(4):  # 150 rows each: 600 > 10% of 3000 by the fourth
        rows = range(150 * batch, 150 * (batch + 1))
        cur.register("more", pa.table({"id": pa.array([3000 + i for i in rows]),
                                       "v": pa.array(list(extra[150 * batch:150 * (batch + 1)]),
                                                     pa.list_(pa.float32()))}))
        cur.execute("INSERT INTO items SELECT id, 0, v FROM more")
        info = cur._session.vectors.info("item_vec")
        assert (info.checksum == snapshot) == (batch < 3)
    assert info.deltas == []
    everything = np.concatenate([vectors, extra])
    probe = np.random.default_rng(12).standard_normal(DIM).astype(np.float32)
    assert top_k(cur, probe) == brute_force(everything, probe, np.ones(3600, dtype=bool), K)
    con.close()


def test_index_errors_are_clear(cur):
    make_vectors(cur, 100)
    with pytest.raises(quarrydb.ProgrammingError, match="index kind must be one of"):
        cur.execute("CREATE INDEX x ON items USING faiss (v) WITH (kind = 'lsh')")
    with pytest.raises(quarrydb.ProgrammingError, match="unknown index option"):
        cur.execute("CREATE INDEX x ON items USING faiss (v) WITH (colour = 'red')")
    with pytest.raises(quarrydb.ProgrammingError, match="malformed CREATE INDEX"):
        cur.execute("CREATE INDEX x ON items USING faiss v")
    with pytest.raises(quarrydb.ProgrammingError, match="not a vector"):
        cur.execute("CREATE INDEX x ON items USING faiss (bucket)")
    cur.execute("CREATE INDEX x ON items USING faiss (v)")
    with pytest.raises(quarrydb.ProgrammingError, match="already exists"):
        cur.execute("CREATE INDEX x ON items USING faiss (v)")
    cur.execute("DROP INDEX x")
    cur.execute("SHOW INDEXES")
    assert cur.fetchall() == []


def test_every_form_of_a_vector_literal_is_answered_through_the_index(cur):
    """A probe written [..], [..]::FLOAT[n], CAST(.. AS DOUBLE[n]) over a FLOAT[n] column: same
    rows as brute force, and the value DuckDB sees is the one written."""
    vectors = make_vectors(cur, 3000)
    cur.execute(f"CREATE TABLE arrays AS SELECT id, v::FLOAT[{DIM}] AS v FROM items")
    cur.execute("CREATE INDEX array_vec ON arrays USING faiss (v) WITH (kind = 'flat')")
    probe = np.random.default_rng(5).standard_normal(DIM).astype(np.float32)
    written = "[" + ", ".join(f"{x:.7f}" for x in probe) + "]"
    expected = brute_force(vectors, probe, np.ones(3000, dtype=bool), K)
    for form in (written, f"{written}::FLOAT[{DIM}]", f"CAST({written} AS DOUBLE[{DIM}])",
                 f"{written}::FLOAT[]"):
        query = f"SELECT id FROM arrays ORDER BY similarity(v, {form}) DESC LIMIT {K}"
        cur.execute("EXPLAIN " + query)
        assert "array_vec" in dict(cur.fetchall())["index scan"], form
        cur.execute(query)
        assert [r[0] for r in cur.fetchall()] == expected, form
    cur.execute(f"SELECT {written}::FLOAT[{DIM}] AS a, {written} AS b")
    as_float, as_written = cur.fetchone()
    digits = [float(f"{x:.7f}") for x in probe]
    assert np.array_equal(np.array(as_float, dtype=np.float32), np.array(digits, np.float32))
    assert [float(x) for x in as_written] == digits


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_scoring_the_matching_rows_from_the_index_sees_inserts_and_deletes(cur, kind,
                                                                          few_exact_rows,
                                                                          monkeypatch):
    """The gathered path reads vectors by position in FAISS's store (flat, HNSW) or by id (IVF):
    positions shift when flat drops rows, new rows sit beside the store until the next
    snapshot, IVF's ids must survive its removals."""
    monkeypatch.setattr(index_scan, "GATHER_MAX_ROWS", 1000)
    vectors = make_vectors(cur, 3000)
    cur.execute(f"CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = '{kind}')")
    rng = np.random.default_rng(3)
    extra = rng.standard_normal((50, DIM)).astype(np.float32)
    for i, vector in enumerate(extra):
        cur.execute("INSERT INTO items VALUES (?, ?, ?)", [3000 + i, i % 1000, vector.tolist()])
    cur.execute("DELETE FROM items WHERE id % 7 = 0")
    everything = np.concatenate([vectors, extra])
    ids = np.arange(len(everything))
    allowed = (ids % 1000 < 100) & (ids % 7 != 0)
    for _ in range(3):
        probe = rng.standard_normal(DIM).astype(np.float32)
        cur.execute("EXPLAIN SELECT id FROM items WHERE bucket < 100 ORDER BY similarity(v, "
                    f"{probe.tolist()}::FLOAT[]) DESC LIMIT {K}")
        assert GATHERED in dict(cur.fetchall())["index scan"]
        assert top_k(cur, probe, "bucket < 100") == brute_force(everything, probe, allowed, K)


MOVED_ROWS, MOVED_DIM = 250_000, 8  # more than one DuckDB row group, or nothing is compacted


def indexed_table_to_compact(path):
    """(connection, cursor, vectors, a row id) of a checkpointed, indexed table whose row
    id = 200000 moves once the rows with id < 100000 are deleted and a checkpoint compacts."""
    import pyarrow as pa

    vectors = np.random.default_rng(0).standard_normal((MOVED_ROWS, MOVED_DIM)).astype(np.float32)
    con = quarrydb.connect(path)
    cur = con.cursor()
    cur.register("src", pa.table({"id": pa.array(np.arange(MOVED_ROWS)), "v": pa
                                  .FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)),
                                                                  MOVED_DIM)}))
    cur.execute(f"CREATE TABLE items AS SELECT id, v::FLOAT[{MOVED_DIM}] AS v FROM src")
    cur.execute("CHECKPOINT")
    cur.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'flat')")
    cur.execute("SELECT rowid FROM items WHERE id = 200000")
    return con, cur, vectors, cur.fetchone()[0]


def test_rows_moved_by_a_checkpoint_keep_their_vectors(tmp_path):
    """DuckDB gives rows new row ids when a checkpoint compacts deleted rows: the index re-points
    them to their new row ids instead of removing and adding their vectors again."""
    con, cur, vectors, before = indexed_table_to_compact(tmp_path / "moved.quarry")
    cur.execute("DELETE FROM items WHERE id < 100000")
    cur.execute("CHECKPOINT")
    cur.execute("SELECT rowid FROM items WHERE id = 200000")
    assert cur.fetchone()[0] != before  # the premise: DuckDB moved the row
    probe = np.random.default_rng(1).standard_normal(MOVED_DIM).astype(np.float32)
    kept = np.arange(MOVED_ROWS) >= 100_000
    assert top_k(cur, probe) == brute_force(vectors, probe, kept, K)
    assert con._database.loaded_indexes["item_vec"].size == 150_000
    assert cur._session.vectors.info("item_vec").next_id == MOVED_ROWS  # none added again
    con.close()
    reopened = quarrydb.connect(tmp_path / "moved.quarry").cursor()  # the map was saved
    assert top_k(reopened, probe) == brute_force(vectors, probe, kept, K)


def test_a_write_whose_checkpoint_moves_rows_leaves_the_index_current(tmp_path):
    """DuckDB checkpoints after a commit once its log passes checkpoint_threshold; that
    checkpoint may move row ids in the middle of a write through quarrydb. The write itself then
    diffs the whole table, so the next search has nothing left to do."""
    con, cur, vectors, before = indexed_table_to_compact(tmp_path / "moved.quarry")
    cur.execute("SET checkpoint_threshold = '1KB'")  # the DELETE's commit checkpoints
    cur.execute("DELETE FROM items WHERE id < 100000")
    cur.execute("SELECT rowid FROM items WHERE id = 200000")
    assert cur.fetchone()[0] != before  # the premise: the write's checkpoint moved the row
    assert "item_vec" in con._database.synced_indexes  # current: no diff left for the search
    assert con._database.loaded_indexes["item_vec"].size == 150_000
    assert cur._session.vectors.info("item_vec").next_id == MOVED_ROWS  # none added again
    probe = np.random.default_rng(1).standard_normal(MOVED_DIM).astype(np.float32)
    assert top_k(cur, probe) == brute_force(vectors, probe, np.arange(MOVED_ROWS) >= 100_000, K)


def test_after_a_checkpoint_only_rows_from_the_first_deleted_one_are_diffed(tmp_path,
                                                                            monkeypatch):
    """A checkpoint keeps the order of the rows it compacts: those before the first deleted row
    keep their row ids. The index is diffed from there on, not from the table's first row."""
    from quarrydb.engine.vector_catalog import VectorCatalog

    starts: list[int] = []  # 0: the whole table
    sync = VectorCatalog._sync
    monkeypatch.setattr(VectorCatalog, "_sync", lambda self, info, index, start=0, touched=None: (
        starts.append(start), sync(self, info, index, start, touched))[1])
    con, cur, vectors, before = indexed_table_to_compact(tmp_path / "moved.quarry")
    cur.execute("DELETE FROM items WHERE id >= 50000 AND id < 200000")
    cur.execute("SELECT rowid FROM items WHERE id = 240000")
    before = cur.fetchone()[0]
    starts.clear()  # (the DELETE's own sync may diff everything: it is not an append)
    cur.execute("SET checkpoint_threshold = '1KB'")  # the INSERT's commit checkpoints
    cur.execute(f"INSERT INTO items VALUES ({MOVED_ROWS}, {[0.5] * MOVED_DIM}::FLOAT[])")
    cur.execute("SELECT rowid FROM items WHERE id = 240000")
    assert cur.fetchone()[0] != before  # the premise: the checkpoint moved the row
    assert 50000 in starts and 0 not in starts
    assert cur._session.vectors.info("item_vec").next_id == MOVED_ROWS + 1  # moved: re-pointed
    everything = np.concatenate([vectors, np.full((1, MOVED_DIM), 0.5, dtype=np.float32)])
    kept = (np.arange(MOVED_ROWS + 1) < 50_000) | (np.arange(MOVED_ROWS + 1) >= 200_000)
    for seed in range(3):
        probe = np.random.default_rng(seed).standard_normal(MOVED_DIM).astype(np.float32)
        assert top_k(cur, probe) == brute_force(everything, probe, kept, K)
    con.close()


def test_a_checkpoint_at_a_write_to_another_table_is_noticed(tmp_path):
    """The checkpoint that compacts this table may run at the commit of any statement: here an
    INSERT into another table. The next search notices it and re-points the moved rows."""
    con, cur, vectors, before = indexed_table_to_compact(tmp_path / "moved.quarry")
    cur.execute("CREATE TABLE notes (body VARCHAR)")
    probe = np.random.default_rng(1).standard_normal(MOVED_DIM).astype(np.float32)
    top_k(cur, probe)  # syncs the index after that DDL
    cur.execute("DELETE FROM items WHERE id < 100000")  # deleted, not yet compacted
    assert "item_vec" in con._database.synced_indexes  # the index is current
    cur.execute("SET checkpoint_threshold = '1KB'")
    cur.execute("INSERT INTO notes VALUES ('its commit checkpoints the whole database')")
    cur.execute("SELECT rowid FROM items WHERE id = 200000")
    assert cur.fetchone()[0] != before  # the premise: that checkpoint moved this table's rows
    assert top_k(cur, probe) == brute_force(vectors, probe, np.arange(MOVED_ROWS) >= 100_000, K)
    assert cur._session.vectors.info("item_vec").next_id == MOVED_ROWS  # none added again


@pytest.mark.parametrize("delete_checkpoints", [False, True])
def test_a_delete_before_a_noticed_checkpoint_is_diffed_is_seen(tmp_path, delete_checkpoints):
    """A checkpoint noticed at a write to another table leaves this index to be diffed from its
    first gap on, at its next search. A DELETE of rows below that gap before then (its own
    commit checkpointing or not) must still be seen: the answer has k rows, none deleted."""
    con, cur, vectors, _ = indexed_table_to_compact(tmp_path / "moved.quarry")
    cur.execute("CREATE TABLE notes (body VARCHAR)")
    probe = vectors[500] + 0.01
    top_k(cur, probe)  # syncs the index after that DDL
    cur.execute("DELETE FROM items WHERE id BETWEEN 150000 AND 159999")  # the index's first gap
    cur.execute("SET checkpoint_threshold = '1KB'")
    cur.execute("INSERT INTO notes VALUES ('its commit checkpoints the whole database')")
    pending = con._database.pending_diffs
    assert pending.keys() == {"item_vec"} and pending["item_vec"].start == 150_000  # the premise
    if not delete_checkpoints:
        cur.execute("RESET checkpoint_threshold")
    cur.execute("DELETE FROM items WHERE id < 1000")
    ids = np.arange(MOVED_ROWS)
    alive = (ids >= 1000) & ((ids < 150_000) | (ids >= 160_000))
    assert top_k(cur, probe) == brute_force(vectors, probe, alive, K)


def test_checkpoints_of_an_append_only_table_need_no_full_diff(tmp_path, monkeypatch):
    """DuckDB checkpoints (here at every commit) compact only deleted rows: while a table is
    only appended to, no row moves, and the index is not diffed against the whole table (at
    1M rows that hashes every vector). After a DELETE a checkpoint may move rows: a full diff."""
    from quarrydb.engine.vector_catalog import VectorCatalog

    starts: list[int] = []  # 0: the whole table
    sync = VectorCatalog._sync

    def recorded(self, info, index, start=0, touched=None):
        starts.append(start)
        return sync(self, info, index, start, touched)

    con = quarrydb.connect(tmp_path / "appends.quarry")
    cur = con.cursor()
    vectors = make_vectors(cur, 3000)
    cur.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'flat')")
    monkeypatch.setattr(VectorCatalog, "_sync", recorded)
    cur.execute("SET checkpoint_threshold = '1KB'")
    extra = np.random.default_rng(6).standard_normal((4, DIM)).astype(np.float32)
    for i, vector in enumerate(extra):
        mark = con._database.file_mark()
        cur.execute(f"INSERT INTO items VALUES ({3000 + i}, 0, {vector.tolist()}::FLOAT[])")
        assert con._database.file_mark() != mark  # the premise: its commit checkpointed
    assert starts and 0 not in starts  # only the appended rows were diffed
    everything = np.concatenate([vectors, extra])
    probe = np.random.default_rng(7).standard_normal(DIM).astype(np.float32)
    assert top_k(cur, probe) == brute_force(everything, probe, np.ones(3004, dtype=bool), K)
    cur.execute("DELETE FROM items WHERE id < 1000")
    assert starts[-1] == 0
    kept = np.arange(3004) >= 1000
    assert top_k(cur, probe) == brute_force(everything, probe, kept, K)
    con.close()


def test_an_explicit_checkpoint_leaves_the_index_kept_current_by_writes(tmp_path):
    """CHECKPOINT changes no row, though it may move row ids like any checkpoint: the writes
    after it still keep the index current themselves, instead of leaving the next search a
    diff of the whole table."""
    con, cur, vectors, before = indexed_table_to_compact(tmp_path / "moved.quarry")
    cur.execute("DELETE FROM items WHERE id < 100000")
    cur.execute("CHECKPOINT")
    cur.execute("SELECT rowid FROM items WHERE id = 200000")
    assert cur.fetchone()[0] != before  # the premise: the checkpoint moved the rows
    extra = np.full((1, MOVED_DIM), 0.5, dtype=np.float32)
    cur.execute(f"INSERT INTO items VALUES ({MOVED_ROWS}, {extra[0].tolist()}::FLOAT[])")
    assert "item_vec" in con._database.synced_indexes  # the INSERT left nothing to diff
    assert con._database.loaded_indexes["item_vec"].size == 150_001
    assert cur._session.vectors.info("item_vec").next_id == MOVED_ROWS + 1  # moved: re-pointed
    everything = np.concatenate([vectors, extra])
    kept = np.arange(MOVED_ROWS + 1) >= 100_000
    for seed in range(3):
        probe = np.random.default_rng(seed).standard_normal(MOVED_DIM).astype(np.float32)
        assert top_k(cur, probe) == brute_force(everything, probe, kept, K)
    con.close()


def test_writes_with_parameters_are_diffed_once_at_the_next_search(cur):
    """executemany sends one statement per row: the index is not diffed after each, but once,
    at the next search, on the rows they touched: for INSERTs the rows they added, for UPDATE
    and DELETE the rows their WHERE picks with the values given. Writes with parameters to a
    table without an index leave it current."""
    vectors = make_vectors(cur, 3000)
    cur.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'flat')")
    database = cur._session.database
    probe = np.random.default_rng(9).standard_normal(DIM).astype(np.float32)
    top_k(cur, probe)
    cur.execute("CREATE TABLE log (line VARCHAR)")
    top_k(cur, probe)  # the index is current again after that DDL
    cur.executemany("INSERT INTO log VALUES (?)", [["a"], ["b"]])
    assert "item_vec" in database.synced_indexes  # another table: nothing to diff
    cur.executemany("INSERT INTO items VALUES (?, 0, ?)", [[i, probe.tolist()] for i in (7, 8, 9)])
    pending = database.pending_diffs["item_vec"]
    assert (pending.start, len(pending.rows())) == (3000, 0)  # the rows added, no other
    assert "item_vec" not in database.synced_indexes
    assert set(top_k(cur, probe)[:3]) == {7, 8, 9}  # the new rows: the nearest there are
    assert "item_vec" in database.synced_indexes
    cur.executemany("DELETE FROM items WHERE id = ? AND rowid >= 3000", [[8], [9]])
    cur.executemany("UPDATE items SET v = $1 WHERE rowid >= $3 AND id = $2",
                    [[(-probe).tolist(), 7, 3000]])  # now the farthest row there is
    cur.execute("DELETE FROM items WHERE id = $id", {"id": 100})
    pending = database.pending_diffs["item_vec"]
    # from the row after the last one before each write on (the DELETEs lowered it), and the
    # rows their WHERE picked
    assert (pending.start, pending.rows().tolist()) == (3001, [100, 3000, 3001, 3002])
    alive = np.arange(3000) != 100
    assert top_k(cur, probe) == brute_force(vectors, probe, alive, K)


def test_writes_after_many_read_ahead_do_not_read_their_rows(cur, monkeypatch):
    """Past WRITES_READ_MAX UPDATEs / DELETEs left to the next search, it diffs the whole
    table, and the writes after them skip reading their rows: it would change nothing."""
    from quarrydb.engine import pending_diffs
    from quarrydb.engine.vector_catalog import VectorCatalog

    monkeypatch.setattr(pending_diffs, "WRITES_READ_MAX", 2)
    vectors = make_vectors(cur, 3000)
    cur.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'flat')")
    probe = np.random.default_rng(16).standard_normal(DIM).astype(np.float32)
    top_k(cur, probe)
    read: list[str | None] = []
    before_write = VectorCatalog.before_write
    monkeypatch.setattr(VectorCatalog, "before_write", lambda self, table, rows_sql, appends: (
        read.append(rows_sql), before_write(self, table, rows_sql, appends))[1])
    nearest = brute_force(vectors, probe, np.ones(3000, dtype=bool), 5)
    cur.executemany("DELETE FROM items WHERE id = ?", [[row] for row in nearest])
    assert [sql is not None for sql in read] == [True, True, True, False, False]
    assert cur._session.database.pending_diffs["item_vec"].start == 0
    alive = np.ones(3000, dtype=bool)
    alive[nearest] = False
    assert top_k(cur, probe) == brute_force(vectors, probe, alive, K)


def test_a_write_whose_rows_cannot_be_read_ahead_is_diffed_whole(cur):
    """Where the rows an UPDATE / DELETE touches cannot be read before it runs (a function
    that answers otherwise each time), the whole table is diffed. A parameter is read ahead as
    DuckDB binds it (0.1 as a DOUBLE, which no FLOAT 0.1 equals; as a literal it would be a
    DECIMAL, which does): the rows read are those the write changes. (Where DuckDB's count of
    rows changed differs from those read, the whole table is diffed: test_pending_diffs.)"""
    vectors = make_vectors(cur, 3000)
    cur.execute("ALTER TABLE items ADD COLUMN weight FLOAT DEFAULT 0.5")
    cur.execute("UPDATE items SET weight = 0.1 WHERE id < 10")
    cur.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'flat')")
    database = cur._session.database
    probe = np.random.default_rng(4).standard_normal(DIM).astype(np.float32)
    top_k(cur, probe)
    cur.execute("DELETE FROM items WHERE id >= 2990 AND random() < 2")
    assert database.pending_diffs["item_vec"].start == 0  # volatile: the whole table
    alive = np.arange(3000) < 2990
    assert top_k(cur, probe) == brute_force(vectors, probe, alive, K)
    cur.execute("SELECT count(*) FROM items WHERE weight = 0.1")
    assert cur.fetchone()[0] == 10  # the premise: the literal picks 10 rows ...
    cur.execute("UPDATE items SET v = ? WHERE weight = ?", [(-probe).tolist(), 0.1])
    assert cur.rowcount == 0  # ... which the parameter does not
    pending = database.pending_diffs["item_vec"]
    assert pending.start > 0 and pending.touched_count == 0  # read ahead alike: no rows
    assert top_k(cur, probe) == brute_force(vectors, probe, alive, K)


def test_writes_and_searches_inside_a_transaction(tmp_path):
    """Inside BEGIN ... COMMIT a search runs without the index (which holds what is committed,
    not what the transaction sees) and a write leaves the index alone; after a ROLLBACK the
    index answers as before, after a COMMIT it has the rows. CREATE / DROP INDEX refuse to run
    in a transaction, with a clear error."""
    with quarrydb.connect(tmp_path / "tx.quarry") as con:
        cur = con.cursor()
        vectors = make_vectors(cur, 3000)
        cur.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'flat')")
        probe = np.random.default_rng(10).standard_normal(DIM).astype(np.float32)
        before = brute_force(vectors, probe, np.ones(3000, dtype=bool), K)
        near = "[" + ", ".join(f"{x:.7f}" for x in probe) + "]::FLOAT[]"
        for end in ("ROLLBACK", "COMMIT"):
            cur.execute("BEGIN TRANSACTION")
            cur.execute(f"INSERT INTO items VALUES (7777, 0, {near})")
            cur.executemany("DELETE FROM items WHERE id = ?", [[before[0]]])
            assert top_k(cur, probe) == [7777, *before[1:]]  # what the transaction sees
            with pytest.raises(quarrydb.ProgrammingError, match="inside a transaction"):
                cur.execute("DROP INDEX item_vec")
            if end == "ROLLBACK":
                cur.execute(end)
                assert top_k(cur, probe) == before  # k rows: nothing of it reached the index
            else:
                con.commit()  # the DB-API's COMMIT
        assert top_k(cur, probe) == [7777, *before[1:]]
        cur.execute(f"EXPLAIN SELECT id FROM items ORDER BY similarity(v, {near}) DESC LIMIT 3")
        assert "item_vec" in dict(cur.fetchall())["index scan"]  # outside: the index again
        cur.execute("BEGIN")
        with pytest.raises(quarrydb.ProgrammingError, match="COMMIT or ROLLBACK first"):
            cur.execute("CREATE INDEX other ON items USING faiss (v)")
        cur.execute("ROLLBACK")


@pytest.mark.parametrize("write", ["INSERT INTO items VALUES (7777, 0, {near})",
                                   "INSERT INTO items SELECT 7777, 0, {near}::FLOAT[] FROM range(1)"
                                   " WHERE NOT EXISTS (SELECT 1 FROM items WHERE id = 7777)"])
def test_a_transaction_committed_after_another_cursor_searched_is_seen(tmp_path, write):
    """Cursor A writes in a transaction; cursor B searches meanwhile, which diffs the shared
    index without seeing A's rows. After A commits they are diffed again: B finds them. (The
    second write is one the index cannot follow row by row: its commit means a full diff.)"""
    with quarrydb.connect(tmp_path / "two.quarry") as con:
        first, second = con.cursor(), con.cursor()
        vectors = make_vectors(first, 3000)
        first.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'flat')")
        probe = np.random.default_rng(12).standard_normal(DIM).astype(np.float32)
        before = brute_force(vectors, probe, np.ones(3000, dtype=bool), K)
        near = "[" + ", ".join(f"{x:.7f}" for x in probe) + "]"
        first.execute("BEGIN")
        first.execute(write.format(near=near))
        assert top_k(second, probe) == before  # not committed: B does not see it
        first.execute("COMMIT")
        assert top_k(second, probe) == [7777, *before[:-1]]


def test_two_connections_to_one_database_see_each_others_writes(tmp_path):
    """Two connections of one process to the same directory share its indexes and what is
    known of them: a DELETE through one is never returned by the other, which would otherwise
    search its own copy of the index, one row short. Closing one leaves the other working."""
    path = tmp_path / "shared.quarry"
    first, second = quarrydb.connect(path), quarrydb.connect(path)
    a, b = first.cursor(), second.cursor()
    vectors = make_vectors(a, 3000)
    a.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'flat')")
    probe = np.random.default_rng(13).standard_normal(DIM).astype(np.float32)
    nearest = brute_force(vectors, probe, np.ones(3000, dtype=bool), K)
    assert top_k(b, probe) == nearest
    a.execute(f"DELETE FROM items WHERE id = {nearest[0]}")
    alive = np.arange(3000) != nearest[0]
    assert top_k(b, probe) == brute_force(vectors, probe, alive, K)
    first.close()
    b.execute(f"DELETE FROM items WHERE id = {nearest[1]}")
    alive[nearest[1]] = False
    assert top_k(b, probe) == brute_force(vectors, probe, alive, K)
    second.close()
    with quarrydb.connect(path) as again:  # opened afresh once both are closed
        assert top_k(again.cursor(), probe) == brute_force(vectors, probe, alive, K)


def test_searches_and_writes_on_two_threads_never_miss_rows(tmp_path):
    """Each thread with a connection of its own (DB-API threadsafety 1), to one database: one
    deletes the rows nearest the probe, one at a time, and adds others; the other searches
    meanwhile. Every answer has k rows (a search between a DELETE's commit and its index
    update would come back short), and the last one is exact."""
    import threading

    path = tmp_path / "threads.quarry"
    with quarrydb.connect(path) as setup:
        vectors = make_vectors(setup.cursor(), 3000)
        setup.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'flat')")
    probe = np.random.default_rng(14).standard_normal(DIM).astype(np.float32)
    nearest = brute_force(vectors, probe, np.ones(3000, dtype=bool), 40)
    writer, searcher = quarrydb.connect(path), quarrydb.connect(path)
    failures: list[BaseException] = []
    done = threading.Event()

    def write() -> None:
        try:
            cur = writer.cursor()
            for step, row in enumerate(nearest):
                cur.execute(f"DELETE FROM items WHERE id = {row}")
                cur.execute("INSERT INTO items VALUES (?, 0, ?)", [10_000 + step,
                                                                 (-probe).tolist()])
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    cur, answers = searcher.cursor(), 0
    while not done.is_set() or answers == 0:
        assert len(top_k(cur, probe)) == K
        answers += 1
    thread.join()
    assert not failures, failures
    alive = np.ones(3000, dtype=bool)
    alive[nearest] = False
    assert top_k(cur, probe) == brute_force(vectors, probe, alive, K)
    writer.close()
    searcher.close()


def test_tombstones_of_ids_the_graph_lacks_leave_writes_diffing_their_rows(tmp_path,
                                                                          monkeypatch):
    """An HNSW index whose catalog tombstones ids its graph does not hold (here: a save outside
    the catalog joined fresh vectors to the graph in memory, then they were deleted) still
    counts its rows right: a write diffs its own rows, not the whole table every time."""
    from quarrydb.engine.vector_catalog import VectorCatalog

    path = tmp_path / "tombstones.quarry"
    with quarrydb.connect(path) as con:
        cur = con.cursor()
        vectors = make_vectors(cur, 3000)
        cur.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'hnsw')")
        cur.execute("INSERT INTO items SELECT 3000 + id, 0, v FROM items WHERE id < 10")
        con._database.loaded_indexes["item_vec"].save(tmp_path / "elsewhere.faiss")
        cur.execute("DELETE FROM items WHERE id >= 3000")
    starts: list[int] = []  # 0: the whole table
    sync = VectorCatalog._sync
    monkeypatch.setattr(VectorCatalog, "_sync", lambda self, info, index, start=0, touched=None: (
        starts.append(start), sync(self, info, index, start, touched))[1])
    with quarrydb.connect(path) as con:
        cur = con.cursor()
        probe = np.random.default_rng(15).standard_normal(DIM).astype(np.float32)
        top_k(cur, probe)  # loaded, and diffed once after the open
        assert con._database.loaded_indexes["item_vec"].size == 3000
        starts.clear()
        cur.execute(f"INSERT INTO items VALUES (3000, 0, {probe.tolist()}::FLOAT[])")
        assert starts == [3000]  # from the row after the last one on, not the whole table
        assert top_k(cur, probe) == [3000, *brute_force(vectors, probe,
                                                        np.ones(3000, dtype=bool), K - 1)]


def test_an_index_whose_sync_failed_is_loaded_again_from_its_files(tmp_path, monkeypatch):
    """A sync that fails after it changed the index in memory, before its catalog commit:
    the index in memory is dropped, and the next search loads the files and diffs them."""
    from quarrydb.engine import vector_catalog

    with quarrydb.connect(tmp_path / "failed.quarry") as con:
        cur = con.cursor()
        vectors = make_vectors(cur, 3000)
        cur.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'flat')")
        probe = np.random.default_rng(11).standard_normal(DIM).astype(np.float32)
        top_k(cur, probe)

        def fail_once(point: str) -> None:
            if point == "index_catalog_written":
                monkeypatch.setattr(vector_catalog, "crash_point", lambda point: None)
                raise RuntimeError("the disk is gone")

        monkeypatch.setattr(vector_catalog, "crash_point", fail_once)
        near = "[" + ", ".join(f"{x:.7f}" for x in probe) + "]::FLOAT[]"
        with pytest.raises(RuntimeError, match="the disk is gone"):
            cur.execute(f"INSERT INTO items VALUES (7777, 0, {near})")
        assert "item_vec" not in con._database.loaded_indexes
        cur.execute("DELETE FROM items WHERE id = 7")
        alive = np.arange(3000) != 7
        assert top_k(cur, probe) == [7777, *brute_force(vectors, probe, alive, K - 1)]


def test_copy_from_keeps_the_index_current_and_copy_to_leaves_it_so(tmp_path):
    """COPY ... FROM appends rows like an INSERT: the index takes them at once. COPY ... TO
    writes a file and changes no row: the index stays known current (no full diff after)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    con = quarrydb.connect(tmp_path / "copy.quarry")
    cur = con.cursor()
    vectors = make_vectors(cur, 3000)
    cur.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'flat')")
    extra = np.random.default_rng(9).standard_normal((200, DIM)).astype(np.float32)
    ids = np.arange(3000, 3200)
    pq.write_table(pa.table({"id": ids, "bucket": ids % 1000,
                             "v": pa.array(list(extra), pa.list_(pa.float32()))}),
                   tmp_path / "more.parquet")
    cur.execute(f"COPY items FROM '{tmp_path / 'more.parquet'}'")
    assert "item_vec" in con._database.synced_indexes  # the COPY left nothing to diff
    assert con._database.loaded_indexes["item_vec"].size == 3200
    cur.execute(f"COPY (SELECT id FROM items WHERE bucket < 5) TO '{tmp_path / 'out.csv'}'")
    cur.execute(f"COPY items TO '{tmp_path / 'all.parquet'}'")
    assert "item_vec" in con._database.synced_indexes
    assert (tmp_path / "out.csv").read_text().count("\n") == 1 + 20  # a header, 5 ids a thousand
    everything = np.concatenate([vectors, extra])
    for seed in range(3):
        probe = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
        assert top_k(cur, probe) == brute_force(everything, probe, np.ones(3200, dtype=bool), K)
        assert top_k(cur, probe, "bucket < 5") == brute_force(
            everything, probe, np.concatenate([np.arange(3000), ids]) % 1000 < 5, K)
    con.close()


def test_each_delete_hides_its_rows_from_the_next_hnsw_search(cur):
    """HNSW hides deleted vectors behind a selector it keeps between searches: every delete
    must reach the next search. (A stale selector would still give the right rows, through the
    exact fallback once the search came back short: so the strategy is checked too.)"""
    vectors = make_vectors(cur, 3000)
    cur.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'hnsw')")
    probe = vectors[5]
    vector = "[" + ", ".join(f"{x:.7f}" for x in probe) + "]::FLOAT[]"
    alive = np.ones(3000, dtype=bool)
    for _ in range(3):
        found = top_k(cur, probe)
        assert found == brute_force(vectors, probe, alive, K)
        cur.execute(f"DELETE FROM items WHERE id = {found[0]}")
        alive[found[0]] = False
        cur.execute(f"EXPLAIN SELECT id FROM items ORDER BY similarity(v, {vector}) DESC"
                    f" LIMIT {K}")
        assert "strategy search," in dict(cur.fetchall())["index scan"]  # not short
    assert top_k(cur, probe) == brute_force(vectors, probe, alive, K)


def test_an_ivf_file_from_before_ivf_kept_its_own_ids_is_refused_so_it_is_rebuilt(tmp_path):
    """IVF inside an id map returned other rows' ids after a removal; such a file must not load
    (the catalog rebuilds an index whose file does not load)."""
    import faiss

    from quarrydb.engine.vector_index import IndexOptions, VectorIndex

    vectors = np.random.default_rng(0).standard_normal((400, DIM)).astype(np.float32)
    options = IndexOptions(kind="ivf", nlist=4)
    current = VectorIndex.build(DIM, options, vectors, np.arange(400))
    current.save(tmp_path / "current.faiss")
    assert VectorIndex.load(tmp_path / "current.faiss", DIM, options, set())[0].index.ntotal == 400
    wrapped = faiss.IndexIDMap2(faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, 4,
                                                   faiss.METRIC_INNER_PRODUCT))
    wrapped.train(vectors)
    faiss.write_index(wrapped, str(tmp_path / "old.faiss"))
    with pytest.raises(ValueError, match="rebuilt"):
        VectorIndex.load(tmp_path / "old.faiss", DIM, options, set())


def test_a_top_k_answer_is_the_same_arrow_either_way_duckdb_offers(cur):
    """The top-k fetch uses DuckDB's own submit where it has one, the DB-API way where not."""
    import duckdb

    from quarrydb.engine.session import _top_k_arrow

    class OnlyDbApi:  # a DuckDB connection without the submit (as an older DuckDB has)
        def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
            self.execute = con.execute

    con = duckdb.connect()
    sql = ("SELECT i, [i, 2]::INTEGER[] AS l, {'x': i} AS s, 1.5::DECIMAL(4, 2) AS d,"
           " 'a' || i AS t, NULL::UUID AS u FROM range(5) r(i) ORDER BY i DESC LIMIT 3")
    (direct, types), (through_db_api, db_api_types) = (_top_k_arrow(con, sql),
                                                       _top_k_arrow(OnlyDbApi(con), sql))
    assert direct.equals(through_db_api) and direct.column("i").to_pylist() == [4, 3, 2]
    assert types == db_api_types == con.sql(sql).types
    with pytest.raises(duckdb.Error, match="nosuch"):
        _top_k_arrow(con, "SELECT nosuch FROM range(3)")


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_a_search_restricted_to_some_ids_returns_only_those(kind):
    """The allowed ids travel to FAISS as a bitmap as long as the largest of them needs:
    every id past its end is out (a bitmap sized in bits, not bytes, let others in)."""
    from quarrydb.engine.vector_index import IndexOptions, VectorIndex

    vectors = np.random.default_rng(4).standard_normal((2000, DIM)).astype(np.float32)
    index = VectorIndex.build(DIM, IndexOptions(kind=kind, nlist=8, nprobe=8), vectors,
                              np.arange(2000))
    allowed = np.arange(0, 60, 5)
    for probe in vectors[1000:1005]:
        _, ids = index.search(probe, K, allowed)
        assert set(ids.tolist()) <= set(allowed.tolist())
        if kind != "hnsw":  # a graph walk may miss rows this rare (the engine then gathers)
            assert len(ids) == K


def test_an_ivf_search_restricted_to_a_few_rows_probes_further():
    """The nearest matching rows of a 10% filter lie in lists further out than the nearest
    rows do: the restricted search probes more lists (1 / sqrt(share) times), and finds them
    at least as well as an unfiltered search finds the nearest rows (without: 0.35 vs 0.55)."""
    from quarrydb.engine.vector_index import IndexOptions, VectorIndex

    rng = np.random.default_rng(6)
    vectors = rng.standard_normal((20_000, DIM)).astype(np.float32)
    index = VectorIndex.build(DIM, IndexOptions(kind="ivf", nlist=128, nprobe=8), vectors,
                              np.arange(20_000))
    allowed = np.flatnonzero(np.arange(20_000) % 10 == 0)
    recalls, unfiltered = [], []
    for probe in rng.standard_normal((20, DIM)).astype(np.float32):
        for allowed_ids, kept in ((allowed, recalls), (None, unfiltered)):
            _, ids = index.search(probe, K, allowed_ids)
            mask = np.ones(20_000, dtype=bool) if allowed_ids is None else np.isin(
                np.arange(20_000), allowed_ids)
            kept.append(len(set(ids.tolist()) & set(brute_force(vectors, probe, mask, K))) / K)
    assert np.mean(recalls) >= np.mean(unfiltered)


def test_a_search_runs_faiss_on_one_thread_and_leaves_the_count_as_it_was():
    """One probe cannot be split across threads; a second only waits on a barrier. Builds must
    keep every thread afterwards."""
    vectors = np.random.default_rng(0).standard_normal((500, 8)).astype(np.float32)
    index = VectorIndex.build(8, IndexOptions(kind="hnsw"), vectors, np.arange(500))
    index.index = _ThreadsSeen(index.index)  # the real FAISS index, its searches watched
    before = faiss.omp_get_max_threads()
    with one_openmp_thread():
        assert faiss.omp_get_max_threads() == 1
    assert index.search(vectors[7], 3)[1][0] == 7
    assert index.index.threads_seen == [1]  # the thread count FAISS searched with
    assert faiss.omp_get_max_threads() == before


class _ThreadsSeen:
    """A FAISS index whose searches note the OpenMP thread count they run with."""

    def __init__(self, index) -> None:
        self.index, self.threads_seen = index, []

    def search(self, *args, **kwargs):
        self.threads_seen.append(faiss.omp_get_max_threads())
        return self.index.search(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.index, name)
