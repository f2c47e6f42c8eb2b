"""executemany writes (INSERT, UPDATE or DELETE, one row each) on an indexed 1M-row table, then
the next searches.

Runs on the database a vector_index.py run left behind (its HNSW index), and puts the table
back as it found it afterwards (the rows added deleted, the rows changed or deleted restored).
To compare two versions of the code, run it with each on PYTHONPATH (see
latency_side_by_side.py for how to set up a baseline package).

Run: .venv/bin/python benchmarks/executemany_writes.py [RUN_FOLDER] [--rows 100]
     [--write insert|update|delete]
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path

import numpy as np

import quarrydb

sys.path.insert(0, str(Path(__file__).parent))
from vector_index import literal  # noqa: E402

FIRST_ID = 5_000_000  # above every id vector_index.py writes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="a vector_index.py run's folder"
                        " (default: the latest /tmp/quarrydb-vectors-*/structured)")
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--write", choices=["insert", "update", "delete"], default="insert")
    args = parser.parse_args()
    work = args.run or sorted(glob.glob("/tmp/quarrydb-vectors-*/structured"))[-1]
    queries = np.load(f"{work}/queries.npy")
    con = quarrydb.connect(f"{work}/bench.quarry")
    cur = con.cursor()

    def search(number: int) -> tuple[float, list]:
        started = time.perf_counter()
        probe = literal(queries[number])
        rows = cur.execute(f"SELECT id FROM items ORDER BY similarity(v, {probe}) DESC LIMIT 10"
                           ).fetchall()
        return time.perf_counter() - started, rows

    search(0)  # loads the index
    ids = np.random.default_rng(5).choice(1_000_000, args.rows, replace=False).tolist()
    cur.execute(f"SELECT id, bucket, v FROM items WHERE id IN ({', '.join(map(str, ids))})")
    originals = cur.fetchall()  # to put back afterwards
    probe_row = queries[1].tolist()  # the next search's probe
    statement, rows = {
        "insert": ("INSERT INTO items VALUES (?, ?, ?)",
                   [[FIRST_ID + i, 0, probe_row] for i in range(args.rows)]),
        "update": ("UPDATE items SET v = ? WHERE id = ?", [[probe_row, i] for i in ids]),
        "delete": ("DELETE FROM items WHERE id = ?", [[i] for i in ids]),
    }[args.write]
    started = time.perf_counter()
    cur.executemany(statement, rows)
    writes = time.perf_counter() - started
    next_search, found = search(1)
    after, _ = search(2)
    seen = {"insert": found[0][0] >= FIRST_ID, "update": found[0][0] in ids,
            "delete": not {row[0] for row in found} & set(ids)}[args.write]
    print(f"executemany {args.write} of {args.rows} rows {writes:.2f} s; the next search"
          f" {next_search:.3f} s (the writes seen in its answer: {seen}); the one after"
          f" {after * 1000:.1f} ms")
    if args.write == "insert":
        cur.execute(f"DELETE FROM items WHERE id >= {FIRST_ID}")
    else:
        cur.execute(f"DELETE FROM items WHERE id IN ({', '.join(map(str, ids))})")
        cur.executemany("INSERT INTO items VALUES (?, ?, ?)", [list(r) for r in originals])
    search(3)
    con.close()


if __name__ == "__main__":
    main()
