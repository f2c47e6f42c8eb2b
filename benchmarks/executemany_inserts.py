"""executemany INSERTs into an indexed 1M-row table, then the next searches.

Runs on the database a vector_index.py run left behind (its HNSW index), and deletes the rows
it added afterwards. To compare two versions of the code, run it with each on PYTHONPATH (see
latency_side_by_side.py for how to set up a baseline package).

Run: .venv/bin/python benchmarks/executemany_inserts.py [RUN_FOLDER] [--rows 100]
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
    rows = [[FIRST_ID + i, 0, queries[i % len(queries)].tolist()] for i in range(args.rows)]
    started = time.perf_counter()
    cur.executemany("INSERT INTO items VALUES (?, ?, ?)", rows)
    inserts = time.perf_counter() - started
    next_search, found = search(1)  # its probe is one of the rows just added
    after, _ = search(2)
    print(f"executemany of {args.rows} rows {inserts:.2f} s; the next search {next_search:.3f} s"
          f" (its nearest row is a new one: {found[0][0] >= FIRST_ID}); the one after"
          f" {after * 1000:.1f} ms")
    cur.execute(f"DELETE FROM items WHERE id >= {FIRST_ID}")
    search(3)
    con.close()


if __name__ == "__main__":
    main()
