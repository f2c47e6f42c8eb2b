"""kill -9 while an index is built or kept current, then reopen: the answers are right.

A child process builds an index (or inserts rows and queries, so the index is synced and saved
again and again) and is killed with SIGKILL at different moments. On reopen the index is either
the old one, the new one, or detected as stale and rebuilt — compared here with brute force.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass

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
    cur.execute("SELECT 1")
    print("ready", flush=True)  # started (seconds for a fresh process, minutes under load)
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


# A fresh process needs seconds before its first statement (more on a loaded machine): the
# deadlines below count from its "ready". They only bound a child that never dies, a failure.
READY_TIMEOUT = 600
RUN_TIMEOUT = 300
KILLED_HERE = "killed here"  # a run's status when this test killed the child, still running


@dataclass
class Run:
    out: list[str]  # its output lines
    status: int | str  # its exit status (-SIGKILL: its fault injection), or KILLED_HERE
    err: str


def run_child(path, mode: str, crash_at: str = "", kill_at: tuple[int, float] | None = None
              ) -> Run:
    """Run the child until it ends (or its fault injection kills it). With `kill_at`
    (n, fraction) it is killed once it printed its n-th insert line, a `fraction` of the time
    its last insert took later: in the middle of the inserts, whatever the machine's speed."""
    later = mode == "insert-merge"
    env = dict(os.environ, QUARRYDB_CRASH_AT="" if later else crash_at,
               QUARRYDB_CRASH_LATER=crash_at if later else "")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), mode],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue[tuple[str, float] | None] = queue.Queue()
    err: list[str] = []

    def read_out() -> None:
        for line in child.stdout:
            lines.put((line.strip(), time.monotonic()))
        lines.put(None)

    readers = [threading.Thread(target=read_out, daemon=True),
               threading.Thread(target=lambda: err.extend(child.stderr), daemon=True)]
    for reader in readers:
        reader.start()
    out: list[str] = []
    times: list[float] = []

    def read_until(count: int, timeout: float) -> str:
        """Read until `count` lines were read ("done"), the output ended ("end") or `timeout`
        passed ("timeout")."""
        deadline = time.monotonic() + timeout
        while len(out) < count:
            try:
                item = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return "timeout"
            if item is None:
                lines.put(None)  # the end stays there for a later call
                return "end"
            out.append(item[0])
            times.append(item[1])
        return "done"

    status: int | str = KILLED_HERE
    try:
        result = read_until(1, READY_TIMEOUT)
        if result == "done" and out == ["ready"]:
            if kill_at is None:
                result = read_until(sys.maxsize, RUN_TIMEOUT)
            else:
                inserts, fraction = kill_at
                result = read_until(1 + inserts, RUN_TIMEOUT)
                if result == "done":
                    time.sleep(fraction * (times[-1] - times[-2]))
                    if child.poll() is not None:
                        result = "end"
        if result == "end":  # it ended by itself (or is ending): its exit status
            with contextlib.suppress(subprocess.TimeoutExpired):
                status = child.wait(timeout=RUN_TIMEOUT)
    finally:
        child.kill()
        child.wait()
        for reader in readers:
            reader.join()
    read_until(sys.maxsize, 0)  # what it printed before the kill
    return Run(out, status, "".join(err)[-3000:])


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
    run = run_child(path, "build", crash_at)
    assert run.out == ["ready", "table"], run.err  # it died inside CREATE INDEX,
    assert run.status == -signal.SIGKILL, run.err  # killed by its fault injection
    check_answers(path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A database with a table and a committed index, copied by each test that needs one."""
    path = tmp_path_factory.mktemp("built") / "crash.quarry"
    run = run_child(path, "build")
    assert (run.out, run.status) == (["ready", "table", "built"], 0), run.err
    return path


@pytest.mark.parametrize("crash_at", ["half_written:.npz", *STEPS])
def test_kill_while_inserts_keep_the_index_current(tmp_path, built, crash_at):
    path = tmp_path / "crash.quarry"
    shutil.copytree(built, path)
    run = run_child(path, "insert", crash_at)
    assert run.out == ["ready"], run.err  # it died in the first sync after an insert
    assert run.status == -signal.SIGKILL, run.err
    check_answers(path)


@pytest.mark.parametrize("crash_at", ["half_written:.npz", *STEPS])
def test_kill_while_delta_files_are_folded_into_one(tmp_path, built, crash_at):
    path = tmp_path / "crash.quarry"
    shutil.copytree(built, path)
    run = run_child(path, "insert-merge", crash_at)
    assert run.out == ["ready", "100001", "100002"], run.err  # it died in the third change's
    assert run.status == -signal.SIGKILL, run.err  # fold
    check_answers(path)


def test_kill_at_random_moments_during_inserts(tmp_path, built):
    """Killed after some inserts, part way into the next (its insert, the sync it causes, its
    search): wherever that falls, the database reopens with the right answers."""
    path = tmp_path / "crash.quarry"
    shutil.copytree(built, path)
    draw = random.Random(3)
    for _ in range(3):
        inserts, fraction = draw.randint(2, 4), draw.random()
        run = run_child(path, "insert", kill_at=(inserts, fraction))
        assert run.status == KILLED_HERE, run.err  # still inserting when it was killed,
        assert len(run.out) > inserts and run.out[0] == "ready", run.err  # after `inserts`
        check_answers(path)
