"""`quarrydb.connect(path, read_only=True)`, as DuckDB's read_only: reads, model calls and index
searches work, nothing is written, and several processes may read one database at once."""

from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import pytest

import quarrydb
from quarrydb.engine.database import DUCKDB_FILE, FORMAT_FILE

LABELS = "['billing', 'bug']"
SEARCH = "SELECT id FROM items ORDER BY similarity(v, [1, 1, 1]::FLOAT[3]) DESC LIMIT 3"
EXACT = "SELECT id FROM items ORDER BY similarity(v, [1, 1, 1]::FLOAT[3]) + 0 DESC LIMIT 3"


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "notes.quarry"
    with quarrydb.connect(path) as con:
        con.execute("CREATE TABLE notes AS SELECT range AS id, 'a note about ' || CASE WHEN"
                    " range % 2 = 0 THEN 'a refund' ELSE 'a crash' END AS body FROM range(8)")
        con.execute("CREATE TABLE items AS SELECT range AS id, [sin(range), cos(range * 1.3),"
                    " range % 11 + 0.5]::FLOAT[3] AS v FROM range(300)")  # no two alike
        con.execute("CREATE INDEX iv ON items USING faiss (v) WITH (kind = 'flat')")
        con.execute(f"SELECT classify(body, {LABELS}) FROM notes").fetchall()
    return path


def _files(path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(path.rglob("*")) if p.is_file()}


def test_reads_model_calls_and_index_searches_write_nothing(database):
    before = _files(database)
    with quarrydb.connect(database, read_only=True) as con:
        cur = con.cursor()
        cur.execute(f"SELECT classify(body, {LABELS}) FROM notes").fetchall()
        assert (cur.stats["model_inputs"], cur.stats["cache_hits"]) == (0, 2)  # cached before
        for _ in range(2):  # computed, and not kept: computed again
            cur.execute("SELECT classify(body, ['refund', 'crash']) FROM notes").fetchall()
            assert (cur.stats["model_inputs"], cur.stats["cache_hits"]) == (2, 0)
        assert cur.execute(SEARCH).fetchall() == cur.execute(EXACT).fetchall()
        cur.execute(f"EXPLAIN {SEARCH}")
        assert "strategy search" in dict(cur.fetchall())["index scan"]
        cur.execute("CREATE TEMP TABLE scratch AS SELECT 1 AS x")  # temporary: allowed
    assert _files(database) == before


@pytest.mark.parametrize("statement, message", [
    ("INSERT INTO notes VALUES (99, 'x')", "read-only mode"),
    (f"CREATE TABLE labelled AS SELECT classify(body, {LABELS}) FROM notes",
     "cannot run CREATE: the database is open read-only"),
    (f"UPDATE notes SET body = classify(body, {LABELS})", "open read-only"),
    ("CREATE INDEX other ON items USING faiss (v)", "CREATE INDEX cannot run: the database is"
     " open read-only"),
    ("DROP INDEX iv", "DROP INDEX cannot run"),
])
def test_writes_are_refused_before_any_model_runs(database, statement, message):
    with quarrydb.connect(database, read_only=True) as con:
        stages = []
        cur = con.cursor()
        cur.set_progress(lambda *report: stages.append(report))
        with pytest.raises(quarrydb.ProgrammingError, match=message):
            cur.execute(statement)
        assert stages == []


def test_two_processes_read_one_database_at_once(database):
    script = ("import sys, quarrydb; c = quarrydb.connect(sys.argv[1], read_only=True);"
              f" print(c.execute('{SEARCH}').fetchall())")
    with quarrydb.connect(database, read_only=True) as con:
        mine = con.execute(SEARCH).fetchall()
        other = subprocess.run([sys.executable, "-c", script, str(database)],
                               capture_output=True, text=True, timeout=120)
    assert other.stdout.strip() == str(mine), other.stderr


def test_an_index_behind_its_table_is_not_used_and_the_answer_is_exact(database):
    plain = duckdb.connect(str(database / DUCKDB_FILE))
    plain.execute("DELETE FROM items WHERE id % 3 = 0")
    plain.execute("INSERT INTO items VALUES (1000, [1, 1, 1])")
    plain.close()
    with quarrydb.connect(database, read_only=True) as con:
        for _ in range(2):
            assert con.execute(SEARCH).fetchall() == con.execute(EXACT).fetchall()
        con.execute(f"EXPLAIN {SEARCH}")
        said = dict(con.fetchall())["index scan"]
        assert "read-only connection cannot update it" in said
        assert "selectivity" not in said  # no rows were counted: none is made up
    with quarrydb.connect(database) as con:  # a connection that may write brings it up to date
        assert con.execute(SEARCH).fetchall() == con.execute(EXACT).fetchall()
        con.execute(f"EXPLAIN {SEARCH}")
        assert "strategy search" in dict(con.fetchall())["index scan"]


def test_what_cannot_be_opened_read_only(database, tmp_path):
    with pytest.raises(quarrydb.ProgrammingError, match="in-memory database cannot be read-only"):
        quarrydb.connect(read_only=True)
    with pytest.raises(quarrydb.OperationalError, match="no quarrydb database there"):
        quarrydb.connect(tmp_path / "missing", read_only=True)
    assert not (tmp_path / "missing").exists()
    with quarrydb.connect(database):
        with pytest.raises(quarrydb.OperationalError, match="open to write in this process"):
            quarrydb.connect(database, read_only=True)


def test_temporary_tables_and_files_may_be_written_with_model_calls(database, tmp_path):
    """DuckDB allows these on a database opened read-only; so does quarrydb, models and all."""
    with quarrydb.connect(database, read_only=True) as con:
        con.execute(f"CREATE TEMP TABLE labelled AS SELECT classify(body, {LABELS}) AS k"
                    " FROM notes")
        con.execute(f"INSERT INTO labelled SELECT classify('a refund', {LABELS})")
        copied = con.execute(f"COPY (SELECT classify(body, {LABELS}) FROM notes) TO"
                             f" '{tmp_path / 'labels.csv'}'")
        assert copied.rowcount == 8
        assert con.execute("SELECT count(*) FROM labelled").fetchall() == [(9,)]


def test_a_database_where_nothing_was_ever_cached_reads_its_cache_as_empty(tmp_path):
    """A directory of an older layout (its DuckDB file without the engine's tables): model
    calls are computed, where the cache lookup failed with DuckDB's catalog error."""
    path = tmp_path / "old.quarry"
    path.mkdir()
    (path / FORMAT_FILE).write_text(json.dumps({"format": 1, "created_by": "quarrydb"}))
    plain = duckdb.connect(str(path / DUCKDB_FILE))
    plain.execute("CREATE TABLE notes AS SELECT 'a refund please' AS body")
    plain.close()
    with quarrydb.connect(path, read_only=True) as con:
        con.execute(f"SELECT classify(body, {LABELS}) FROM notes")
        assert con.fetchall() == con.execute(f"SELECT classify('a refund please', {LABELS})"
                                             ).fetchall()
