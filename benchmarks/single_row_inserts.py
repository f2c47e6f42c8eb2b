"""Single-row INSERTs into an indexed table, side by side with plain DuckDB.

An application adds rows one at a time. Each INSERT through quarrydb keeps the index current:
the new row's vector is added and saved as a small file beside the index's snapshot. This
times N such INSERTs against the same INSERTs into a copy of the same DuckDB file without an
index, and counts how often the snapshot itself was rewritten (a whole-index write: 6-12 s at
1M x 384).

Run: .venv/bin/python benchmarks/single_row_inserts.py [--rows 1000000] [--inserts 100]
     [--kind flat]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import duckdb  # noqa: E402
import numpy as np  # noqa: E402
from vector_index import literal, random_vectors, write_parquet  # noqa: E402

import quarrydb  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--inserts", type=int, default=100)
    parser.add_argument("--kind", default="flat")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="quarrydb-single-rows-"))
    try:
        run(args, work)
    finally:
        shutil.rmtree(work)


def run(args: argparse.Namespace, work: Path) -> None:
    parquet = work / "vectors.parquet"
    write_parquet(parquet, np.arange(args.rows), np.arange(args.rows) % 1000,
                  random_vectors("structured", args.rows, args.dim, seed=0))
    con = quarrydb.connect(work / "bench.quarry")
    cur = con.cursor()
    cur.execute(f"CREATE TABLE items AS SELECT id, bucket, v::FLOAT[{args.dim}] AS v"
                f" FROM read_parquet('{parquet}')")
    started = time.perf_counter()
    cur.execute(f"CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = '{args.kind}')")
    build = time.perf_counter() - started
    cur.execute("CHECKPOINT")
    shutil.copyfile(work / "bench.quarry" / "quarry.duckdb", work / "plain.duckdb")
    plain = duckdb.connect(str(work / "plain.duckdb"))
    new_rows = random_vectors("structured", args.inserts, args.dim, seed=3)
    with_index, alone, rewrites = [], [], 0
    snapshot = cur._session.vectors.info("item_vec").checksum
    for i, vector in enumerate(new_rows):
        sql = f"INSERT INTO items VALUES ({args.rows + i}, 0, {literal(vector)})"
        started = time.perf_counter()
        cur.execute(sql)
        with_index.append(time.perf_counter() - started)
        started = time.perf_counter()
        plain.execute(sql)
        alone.append(time.perf_counter() - started)
        checksum = cur._session.vectors.info("item_vec").checksum
        rewrites += checksum != snapshot
        snapshot = checksum
    started = time.perf_counter()
    cur.execute(f"SELECT id FROM items ORDER BY similarity(v, {literal(new_rows[-1])}) DESC"
                " LIMIT 1")
    found = cur.fetchall()
    query = time.perf_counter() - started
    info = cur._session.vectors.info("item_vec")
    print(f"{args.inserts} single-row INSERTs into {args.rows} rows x {args.dim}, {args.kind}"
          f" index (built in {build:.1f} s)")
    for name, times in (("through quarrydb", with_index), ("plain DuckDB", alone)):
        median = statistics.median(times) * 1000
        print(f"  {name:16}: total {sum(times):7.2f} s, median {median:7.1f} ms,"
              f" max {max(times) * 1000:8.1f} ms")
    last_found = found == [(args.rows + args.inserts - 1,)]
    print(f"  snapshot rewrites: {rewrites}; files beside it now: {len(info.deltas)}; the next"
          f" search {query * 1000:.1f} ms, found the last row: {last_found}")
    plain.close()
    con.close()


if __name__ == "__main__":
    main()
