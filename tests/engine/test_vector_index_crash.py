"""kill -9 while an index is built or kept current, then reopen: the answers are right.

A child process builds an index (or inserts rows and queries, so the index is synced and saved
again and again) and is killed with SIGKILL at different moments. On reopen the index is either
the old one, the new one, or detected as stale and rebuilt — compared here with brute force.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import quarrydb

DIM = 16

CHILD = textwrap.dedent("""
    import os, sys, numpy as np, pyarrow as pa, quarrydb
    from quarrydb.engine import vector_catalog
    path, mode = sys.argv[1], sys.argv[2]
    if mode == "insert-merge":  # the third change folds the two delta files before it into one
        vector_catalog.MAX_DELTAS = 2
    con = quarrydb.connect(path)
    cur = con.cursor()
    # Inserted rows draw from another seed: with the same one row 100000 + i would repeat row
    # i's vector, and two rows with equal scores may come back in either order.
    rng = np.random.default_rng(0 if mode == "build" else 1)
    if mode == "build":
        vectors = rng.standard_normal((5000, {dim})).astype(np.float32)
        flat = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), {dim})
        cur.register("src", pa.table({{
            "id": pa.array(range(len(vectors))), "v": flat.cast(pa.list_(pa.float32()))}}))
        cur.execute("CREATE TABLE items AS SELECT id, v FROM src")
        print("table", flush=True)
        cur.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'flat')")
        print("built", flush=True)
    else:
        probe = "[" + ", ".join(["0.5"] * {dim}) + "]::FLOAT[]"
        i = 100000
        while True:
            row = ", ".join(f"{{x:.5f}}" for x in rng.standard_normal({dim}))
            cur.execute(f"INSERT INTO items VALUES ({{i}}, [{{row}}]::FLOAT[])")
            cur.execute(f"SELECT id FROM items ORDER BY similarity(v, {{probe}}) DESC LIMIT 5")
            cur.fetchall()
            i += 1
            print(i, flush=True)
            if mode == "insert-merge" and i == 100002:  # die in that fold, not before
                os.environ["QUARRYDB_CRASH_AT"] = os.environ.get("QUARRYDB_CRASH_LATER", "")
""").format(dim=DIM)


def run_child(path, mode: str, kill_after: float, crash_at: str = "") -> str:
    later = mode == "insert-merge"
    env = dict(os.environ, QUARRYDB_CRASH_AT="" if later else crash_at,
               QUARRYDB_CRASH_LATER=crash_at if later else "")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), mode],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        child.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.kill(child.pid, signal.SIGKILL)
    out, _ = child.communicate()
    return out


def check_answers(path) -> None:
    with quarrydb.connect(path) as con:
        cur = con.cursor()
        cur.execute("SELECT count(*) FROM _quarry.vector_indexes WHERE name = 'item_vec'")
        if cur.fetchone()[0] == 0:
            return  # killed before the index was committed: there is none, and that is right
        cur.execute("SELECT id, v FROM items ORDER BY id")
        rows = cur.fetchall()
        ids = np.array([r[0] for r in rows])
        vectors = np.array([r[1] for r in rows], dtype=np.float32)
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        rng = np.random.default_rng(7)
        for _ in range(3):
            probe = rng.standard_normal(DIM).astype(np.float32)
            literal = "[" + ", ".join(f"{x:.7f}" for x in probe) + "]::FLOAT[]"
            cur.execute(f"SELECT id FROM items ORDER BY similarity(v, {literal}) DESC LIMIT 10")
            got = [r[0] for r in cur.fetchall()]
            expected = ids[np.argsort(-(unit @ (probe / np.linalg.norm(probe))))[:10]].tolist()
            assert got == expected


# Between every two steps of writing an index: file half written, file written but not recorded,
# recorded but not committed, committed.
# (A build writes the whole index file; a sync after a write saves a small delta file.)
STEPS = ["index_file_written", "index_catalog_written", "index_committed"]


@pytest.mark.parametrize("crash_at", ["half_written:.faiss", *STEPS])
def test_kill_during_build_then_reopen(tmp_path, crash_at):
    path = tmp_path / "crash.quarry"
    out = run_child(path, "build", 60, crash_at)
    assert "table" in out and "built" not in out  # it died inside CREATE INDEX
    check_answers(path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A database with a table and a committed index, copied by each test that needs one."""
    path = tmp_path_factory.mktemp("built") / "crash.quarry"
    assert "built" in run_child(path, "build", 60)
    return path


@pytest.mark.parametrize("crash_at", ["half_written:.npz", *STEPS])
def test_kill_while_inserts_keep_the_index_current(tmp_path, built, crash_at):
    path = tmp_path / "crash.quarry"
    shutil.copytree(built, path)
    out = run_child(path, "insert", 60, crash_at)
    assert "100000" not in out.split()  # it died in the first sync after an insert
    check_answers(path)


@pytest.mark.parametrize("crash_at", ["half_written:.npz", *STEPS])
def test_kill_while_delta_files_are_folded_into_one(tmp_path, built, crash_at):
    path = tmp_path / "crash.quarry"
    shutil.copytree(built, path)
    out = run_child(path, "insert-merge", 60, crash_at).split()
    assert "100002" in out and "100003" not in out  # it died in the third change's fold
    check_answers(path)


def test_kill_at_random_moments_during_inserts(tmp_path, built):
    path = tmp_path / "crash.quarry"
    shutil.copytree(built, path)
    for kill_after in (3.2, 3.6, 4.0):
        run_child(path, "insert", kill_after)
        check_answers(path)
