"""An index follows the one table it was made on, however a statement names a table and
whatever database or schema is in use (USE, SET schema), as DuckDB resolves names: a search
or a write that names another table of the same name never reads or changes the index."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import quarrydb

ROWS, DIM = 1000, 4
PROBE = "[0.5, -0.5, 0.5, -0.5]::FLOAT[4]"
SEARCH = f"SELECT id FROM items ORDER BY similarity(v, {PROBE}) DESC LIMIT 3"
EXACT = f"SELECT id FROM items ORDER BY similarity(v, {PROBE}) + 0 DESC LIMIT 3"  # no index


def make_table(cur, name: str = "items", sign: float = 1.0, seed: int = 0) -> None:
    vectors = sign * np.random.default_rng(seed).standard_normal((ROWS, DIM)).astype(np.float32)
    cur.register("src", pa.table({"id": pa.array(range(ROWS)),
                                  "v": pa.array(list(vectors), pa.list_(pa.float32(), DIM))}))
    cur.execute(f"CREATE TABLE {name} AS SELECT id, v FROM src")
    cur.unregister("src")


def rows(cur, sql: str) -> list:
    return cur.execute(sql).fetchall()


def index_used(cur, sql: str) -> bool:
    return "index scan" in dict(rows(cur, f"EXPLAIN {sql}"))


@pytest.fixture
def indexed(tmp_path):
    """A database with main.items indexed and s2.items, a table of the same name holding the
    opposite vectors (its best rows are main.items' worst)."""
    with quarrydb.connect(tmp_path / "names.quarry") as con:
        cur = con.cursor()
        make_table(cur)
        cur.execute("CREATE INDEX iv ON items USING faiss (v) WITH (kind = 'flat')")
        cur.execute("CREATE SCHEMA s2")
        make_table(cur, "s2.items", sign=-1.0)
        yield con, cur


def test_a_search_from_another_schema_reads_the_table_its_name_leads_to(indexed):
    _, cur = indexed
    main_answer = rows(cur, SEARCH)
    cur.execute("SET schema = 's2'")
    assert rows(cur, SEARCH) == rows(cur, EXACT)  # s2.items' best: was the index's answer
    assert rows(cur, SEARCH) != main_answer
    assert not index_used(cur, SEARCH)
    main_search = SEARCH.replace("FROM items", "FROM main.items")
    assert rows(cur, main_search) == main_answer
    assert index_used(cur, main_search)
    cur.execute("SET schema = 'main'")
    assert rows(cur, SEARCH) == main_answer and index_used(cur, SEARCH)


def test_a_sync_from_another_schema_reads_the_indexed_table(indexed):
    """Before, the index's diff read `items` from the schema in use: s2.items' vectors
    replaced main.items' in the index."""
    con, cur = indexed
    main_answer = rows(cur, SEARCH)
    cur.execute("SET schema = 's2'")
    cur.execute(f"UPDATE items SET v = {PROBE} WHERE id = 7")  # s2.items only
    cur.execute(f"INSERT INTO items VALUES (5000, {PROBE})")
    rows(cur, SEARCH)
    cur.execute("SET schema = 'main'")
    assert rows(cur, SEARCH) == main_answer == rows(cur, EXACT)
    assert rows(cur, "SHOW INDEXES")[0][5] == ROWS


def test_writes_from_another_schema_keep_the_index_current(indexed):
    _, cur = indexed
    cur.execute("SET schema = 's2'")
    cur.execute(f"UPDATE main.items SET v = {PROBE} WHERE id = 7")
    cur.execute("DELETE FROM main.items WHERE id = 8")
    cur.execute("SET schema = 'main'")
    assert rows(cur, SEARCH)[0] == (7,)
    assert rows(cur, SEARCH) == rows(cur, EXACT)


def test_use_of_another_database(indexed):
    """Before, every model call and search failed: the engine's own tables were looked up in
    the database in use."""
    _, cur = indexed
    cur.execute("ATTACH ':memory:' AS other")
    cur.execute("USE other")
    make_table(cur, "items", sign=-1.0)
    assert rows(cur, SEARCH) == rows(cur, EXACT)
    assert not index_used(cur, SEARCH)
    assert rows(cur, "SHOW INDEXES")[0][:2] == ("iv", "items")
    assert rows(cur, "SELECT similarity([1, 0]::FLOAT[2], [1, 0]::FLOAT[2])") == [(1.0,)]
    assert rows(cur, "SELECT id FROM quarry.main.items ORDER BY similarity(v, "
                     f"{PROBE}) DESC LIMIT 3") == rows(cur, "SELECT id FROM quarry.main.items"
                                                         f" ORDER BY similarity(v, {PROBE}) + 0"
                                                         " DESC LIMIT 3")
    with pytest.raises(quarrydb.ProgrammingError, match="in database other"):
        cur.execute("CREATE INDEX iv2 ON items USING faiss (v)")


def test_a_model_call_after_use_of_another_database(tmp_path):
    with quarrydb.connect(tmp_path / "use.quarry") as con:
        cur = con.cursor()
        cur.execute("ATTACH ':memory:' AS other")
        cur.execute("USE other")
        cur.execute("CREATE TABLE notes AS SELECT 'refund me' AS body")
        cur.execute("SELECT len(embed(body)) FROM notes")
        assert cur.fetchall() == [(384,)]
        cur.execute("SELECT len(embed(body)) FROM notes")
        assert cur.stats["cache_hits"] == 1  # stored in quarry's cache, found there again


def test_an_index_on_a_temporary_table_is_refused(cur):
    """A temporary table is each connection's own; an index is the database's, seen by every
    cursor: before, another cursor's search was answered from this one's vectors."""
    make_table(cur)
    cur.execute("CREATE TEMP TABLE scratch AS SELECT * FROM items")
    with pytest.raises(quarrydb.ProgrammingError, match="scratch: it is a temporary table"):
        cur.execute("CREATE INDEX on_scratch ON scratch USING faiss (v)")
    assert rows(cur, "SHOW INDEXES") == []


def test_a_temporary_table_shadowing_the_indexed_one_is_searched_exactly(cur):
    make_table(cur)
    cur.execute("CREATE INDEX iv ON items USING faiss (v) WITH (kind = 'flat')")
    main_answer = rows(cur, SEARCH)
    cur.execute(f"CREATE TEMP TABLE items AS SELECT id + 5000 AS id, {PROBE} AS v"
                " FROM range(3) t(id)")
    assert rows(cur, SEARCH) == [(5000,), (5001,), (5002,)]
    cur.execute("DROP TABLE temp.main.items")
    assert rows(cur, SEARCH) == main_answer and index_used(cur, SEARCH)


def test_a_table_dropped_and_made_again_can_be_indexed_again(cur):
    """Before, the second CREATE INDEX was dropped at once, silently (its name was still
    noted against the dropped table)."""
    make_table(cur)
    cur.execute("CREATE INDEX iv ON items USING faiss (v)")
    cur.execute("DROP TABLE items")
    make_table(cur, seed=1)
    cur.execute("CREATE INDEX iv ON items USING faiss (v)")
    assert [r[0] for r in rows(cur, "SHOW INDEXES")] == ["iv"]
    assert index_used(cur, SEARCH)
    assert rows(cur, SEARCH) == rows(cur, EXACT)


def test_an_index_made_from_another_schema_is_kept_qualified(indexed):
    _, cur = indexed
    cur.execute("SET schema = 's2'")
    cur.execute("CREATE INDEX iv2 ON items USING faiss (v) WITH (kind = 'flat')")
    assert index_used(cur, SEARCH)
    s2_answer = rows(cur, SEARCH)
    assert s2_answer == rows(cur, EXACT)
    cur.execute("SET schema = 'main'")
    assert ("iv2", '"s2"."items"') in [r[:2] for r in rows(cur, "SHOW INDEXES")]
    assert rows(cur, SEARCH.replace("FROM items", "FROM s2.items")) == s2_answer


def test_writes_to_a_table_whose_name_needs_quotes(cur):
    cur.execute('CREATE TABLE "my items" AS SELECT id, v FROM (SELECT range AS id,'
                ' [sin(range), cos(range), sin(2 * range), cos(3 * range)]::FLOAT[4] AS v'
                " FROM range(1000))")
    cur.execute('CREATE INDEX iv ON "my items" USING faiss (v) WITH (kind = \'flat\')')
    search = SEARCH.replace("FROM items", 'FROM "my items"')
    cur.execute(f'UPDATE "my items" SET v = {PROBE} WHERE id = 5')
    cur.execute('DELETE FROM "my items" WHERE id = 418')
    assert rows(cur, search)[0] == (5,)
    assert rows(cur, search) == rows(cur, EXACT.replace("FROM items", 'FROM "my items"'))


def test_a_registered_table_of_the_indexed_name_is_searched_exactly(cur):
    make_table(cur)
    cur.execute("CREATE INDEX iv ON items USING faiss (v) WITH (kind = 'flat')")
    rows(cur, SEARCH)
    cur.register("items", pa.table({"id": [7, 8], "v": pa.array(
        [[0.5, -0.5, 0.5, -0.5], [1.0, 0.0, 0.0, 0.0]], pa.list_(pa.float32(), DIM))}))
    assert rows(cur, SEARCH) == [(7,), (8,)]  # before: a Binder Error on rowid
    cur.unregister("items")
    cur.execute(f"INSERT INTO items VALUES (424242, {PROBE})")  # the table's, noted again
    assert rows(cur, SEARCH)[0] == (424242,)
    assert rows(cur, SEARCH) == rows(cur, EXACT)


def test_explain_analyze_of_a_write_keeps_the_index_current(cur):
    """EXPLAIN ANALYZE runs what it explains: its INSERT and DELETE never reached the index."""
    make_table(cur)
    cur.execute("CREATE INDEX iv ON items USING faiss (v) WITH (kind = 'flat')")
    best = rows(cur, SEARCH)[0][0]
    cur.execute(f"EXPLAIN ANALYZE INSERT INTO items VALUES (424242, {PROBE})")
    cur.execute(f"EXPLAIN ANALYZE DELETE FROM items WHERE id = {best}")
    assert rows(cur, SEARCH)[0] == (424242,)
    assert rows(cur, SEARCH) == rows(cur, EXACT)


def test_a_view_with_a_rowid_column_is_not_taken_for_its_table(indexed):
    _, cur = indexed
    cur.execute("CREATE VIEW s2.evens AS SELECT rowid AS rowid, id, v FROM main.items"
                " WHERE id % 2 = 0")
    search = SEARCH.replace("FROM items", "FROM s2.evens")
    assert not index_used(cur, search)
    assert all(r[0] % 2 == 0 for r in rows(cur, search))


def test_writes_in_a_transaction_never_fail_on_the_engines_lookups(indexed):
    """A failed statement aborts DuckDB's open transaction: the engine's own lookups inside
    one must not fail, nor miss the indexed table."""
    _, cur = indexed
    cur.execute("BEGIN")
    cur.execute(f"INSERT INTO items VALUES (424242, {PROBE})")
    cur.execute("INSERT INTO s2.items VALUES (1, [1, 0, 0, 0])")
    cur.execute("COMMIT")
    assert rows(cur, SEARCH)[0] == (424242,)
    assert rows(cur, SEARCH) == rows(cur, EXACT)
