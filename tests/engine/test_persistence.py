"""A database directory keeps user tables and the result cache across reopen."""

from __future__ import annotations

import json

import pytest

import quarrydb
from quarrydb.engine.database import FORMAT_VERSION


def test_reopen_keeps_tables_and_cached_results(tmp_path):
    path = tmp_path / "notes.quarry"
    with quarrydb.connect(path) as con:
        cur = con.cursor()
        cur.execute("CREATE TABLE notes AS SELECT * FROM (VALUES ('refund my card'),"
                    " ('the app crashes')) t(body)")
        cur.execute("SELECT body, classify(body, ['billing', 'bug']) FROM notes ORDER BY 1")
        first = cur.fetchall()
        assert cur.stats["model_inputs"] == 2
    assert (path / "quarry.duckdb").is_file()
    assert json.loads((path / "FORMAT").read_text())["format"] == FORMAT_VERSION

    with quarrydb.connect(path) as con:
        cur = con.cursor()
        cur.execute("SELECT body, classify(body, ['billing', 'bug']) FROM notes ORDER BY 1")
        assert cur.fetchall() == first
        assert cur.stats["model_inputs"] == 0
        assert cur.stats["cache_hits"] == 2
        # Another label list is another question: computed, not served from the cache.
        cur.execute("SELECT classify(body, ['billing', 'bug', 'praise']) FROM notes")
        assert cur.stats["model_inputs"] == 2


def test_the_cache_is_keyed_by_content_not_by_row(tmp_path):
    with quarrydb.connect(tmp_path / "db.quarry") as con:
        cur = con.cursor()
        cur.execute("SELECT embed('same words')")
        cur.execute("CREATE TABLE t AS SELECT 'same words' AS a, 'same words' AS b")
        cur.execute("SELECT similarity(embed(a), embed(b)) FROM t")
        assert cur.stats["model_inputs"] == 0


def test_a_newer_format_is_refused_with_a_reason(tmp_path):
    path = tmp_path / "future.quarry"
    quarrydb.connect(path).close()
    (path / "FORMAT").write_text(json.dumps({"format": FORMAT_VERSION + 1}))
    with pytest.raises(quarrydb.OperationalError, match="newer quarrydb"):
        quarrydb.connect(path)


def test_a_directory_that_is_not_a_database_is_refused(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"not ours")
    with pytest.raises(quarrydb.OperationalError, match="not a quarrydb database"):
        quarrydb.connect(tmp_path / "photos")
    (tmp_path / "plain.duckdb").write_bytes(b"")
    with pytest.raises(quarrydb.OperationalError, match="is a file"):
        quarrydb.connect(tmp_path / "plain.duckdb")


def test_engine_tables_stay_out_of_the_users_way(tmp_path):
    with quarrydb.connect(tmp_path / "db.quarry") as con:
        cur = con.execute("SHOW TABLES")
        assert cur.fetchall() == []
