"""Search latency as 1% INSERTs pile up beside an HNSW index, and what each INSERT costs.

New vectors are scored exactly beside the graph until the snapshot is rewritten (which joins
them to it): each held vector costs every search a little. This adds 1% more rows a round to
a copy of the database a vector_index.py run left behind, and after each round times
unfiltered searches through SQL. To compare two versions of the code, run it with each on
PYTHONPATH (see latency_side_by_side.py for how to set up a baseline package).

Run: .venv/bin/python benchmarks/fresh_vectors.py [RUN_FOLDER] [--rounds 10] [--queries 30]
"""

from __future__ import annotations

import argparse
import glob
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import quarrydb

sys.path.insert(0, str(Path(__file__).parent))
from vector_index import K, literal, random_vectors, snapshot_rewritten, write_parquet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="a vector_index.py run's folder"
                        " (default: the latest /tmp/quarrydb-vectors-*/structured)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--queries", type=int, default=30)
    args = parser.parse_args()
    run = Path(args.run or sorted(glob.glob("/tmp/quarrydb-vectors-*/structured"))[-1])
    queries = np.load(run / "queries.npy")[: args.queries]
    sqls = [f"SELECT id FROM items ORDER BY similarity(v, {literal(q)}) DESC LIMIT {K}"
            for q in queries]
    with tempfile.TemporaryDirectory(prefix="quarrydb-fresh-", dir=run) as scratch:
        copy = Path(scratch) / "bench.quarry"
        shutil.copytree(run / "bench.quarry", copy)
        con = quarrydb.connect(copy)
        cur = con.cursor()
        rows = cur.execute("SELECT count(*), max(id) FROM items").fetchall()[0]
        added, first_id = rows[0] // 100, rows[1] + 1
        cur.execute(sqls[0]).fetchall()  # loads and diffs the index

        def latency() -> float:
            times = []
            for sql in sqls:
                started = time.perf_counter()
                cur.execute(sql).fetchall()
                times.append(time.perf_counter() - started)
            return statistics.median(times) * 1000

        print(f"{run}: +1% ({added} rows) a round; median of {len(sqls)} unfiltered searches")
        print(f"  before: search {latency():.2f} ms")
        for round_ in range(args.rounds):
            path = Path(scratch) / f"round-{round_}.parquet"
            start = first_id + round_ * added
            write_parquet(path, np.arange(start, start + added), np.zeros(added, dtype=np.int64),
                          random_vectors("structured", added, queries.shape[1], seed=20 + round_))
            started = time.perf_counter()
            cur.execute(f"INSERT INTO items SELECT id, bucket, v::FLOAT[{queries.shape[1]}]"
                        f" FROM read_parquet('{path}')")
            insert = time.perf_counter() - started
            index = con._database.loaded_indexes["item_vec"]
            print(f"  round {round_ + 1}: INSERT {insert:6.2f} s"
                  f"{' (rewrote the snapshot)' if snapshot_rewritten(cur) else ''};"
                  f" {len(index.fresh_ids)} vectors beside the graph; search {latency():.2f} ms")
        con.close()


if __name__ == "__main__":
    main()
