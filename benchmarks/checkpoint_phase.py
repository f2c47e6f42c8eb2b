"""What a DuckDB checkpoint costs depends on where it falls: plain DuckDB, no quarrydb.

The insert rounds of vector_index.py add 1% (10,000 rows of FLOAT[384]) to a 1M-row table
again and again. DuckDB checkpoints at a commit once its log passes checkpoint_threshold (16 MB
by default), and such a checkpoint took 0.4 s or 10 s there, by where it fell against the
filling of a row group. quarrydb commits once more after each INSERT (the index's own rows),
which moves where the threshold is crossed. This runs the same rounds on copies of one plain
DuckDB file: with and without a second small commit a round (rows in a side table, as
quarrydb's index map), at two thresholds. If the total moves with the phase alone, the extra
checkpoint time of an indexed file is DuckDB's, not the index's work.

Run: .venv/bin/python benchmarks/checkpoint_phase.py [--rows 1000000] [--rounds 24]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DIM = 384


def write_vectors(path: Path, first_id: int, rows: int, seed: int) -> None:
    vectors = np.random.default_rng(seed).standard_normal((rows, DIM)).astype(np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIM)
    pq.write_table(pa.table({"id": pa.array(np.arange(first_id, first_id + rows)),
                             "v": column}), path)


def rounds(base: Path, work: Path, threshold: str, side_commit: bool, count: int) -> list[float]:
    """Seconds per round on a fresh copy of `base`."""
    copy = work / "copy.duckdb"
    shutil.copyfile(base, copy)
    con = duckdb.connect(str(copy))
    con.execute(f"SET checkpoint_threshold = '{threshold}'")
    times = []
    for round_ in range(count):
        started = time.perf_counter()
        con.execute(f"INSERT INTO items SELECT id, v FROM read_parquet('{work}/round-{round_}"
                    f".parquet')")
        if side_commit:  # what quarrydb's index map adds: a few small columns a row
            con.execute("INSERT INTO side SELECT rowid, rowid, hash(id) FROM items"
                        " WHERE rowid > (SELECT max(row_id) FROM side)")
        times.append(time.perf_counter() - started)
    con.close()
    copy.unlink()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=24)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="quarrydb-checkpoints-"))
    try:
        added = args.rows // 100
        write_vectors(work / "base.parquet", 0, args.rows, seed=0)
        for round_ in range(args.rounds):
            write_vectors(work / f"round-{round_}.parquet", args.rows + round_ * added, added,
                          seed=1 + round_)
        base = work / "base.duckdb"
        con = duckdb.connect(str(base))
        con.execute(f"CREATE TABLE items AS SELECT id, v::FLOAT[{DIM}] AS v"
                    f" FROM read_parquet('{work}/base.parquet')")
        con.execute("CREATE TABLE side AS SELECT rowid AS row_id, rowid AS vid,"
                    " hash(id) AS key_hash FROM items")
        con.close()
        print(f"{args.rounds} rounds of +{added} rows into {args.rows} rows of FLOAT[{DIM}]")
        for threshold in ("16MB", "32MB"):
            for side_commit in (False, True):
                times = rounds(base, work, threshold, side_commit, args.rounds)
                label = "INSERT + a small commit" if side_commit else "INSERT alone"
                print(f"  threshold {threshold:>5}, {label:24}: total {sum(times):6.2f} s;"
                      f" each {' '.join(f'{t:.2f}' for t in times)}")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
