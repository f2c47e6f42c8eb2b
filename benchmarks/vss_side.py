"""DuckDB's vss extension (HNSW) on the same vectors and queries, for benchmarks/vector_index.py.

Runs in its own Python with duckdb and duckdb-extension-vss installed (their versions must match;
see RESULTS.md), because quarrydb's DuckDB is a different release. Prints one JSON object.

Run: VSS_PYTHON benchmarks/vss_side.py VECTORS.parquet QUERIES.npy K
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

import duckdb
import numpy as np


def main() -> None:
    parquet, queries_file, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
    import duckdb_extension_vss

    folder = os.path.join(os.path.dirname(duckdb_extension_vss.__file__), "extensions")
    extension = next(os.path.join(root, f) for root, _, files in os.walk(folder) for f in files)
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{extension}'")
    queries = np.load(queries_file)
    dim = queries.shape[1]
    con.execute(f"CREATE TABLE items AS SELECT id, bucket, v::FLOAT[{dim}] AS v"
                f" FROM read_parquet('{parquet}')")
    started = time.perf_counter()
    con.execute("CREATE INDEX items_hnsw ON items USING HNSW (v) WITH (metric = 'cosine')")
    build = time.perf_counter() - started
    results: dict[str, object] = {"build_s": round(build, 2), "version": duckdb.__version__}
    for name, where in [("unfiltered", ""), ("1%", "WHERE bucket < 10"),
                        ("10%", "WHERE bucket < 100")]:
        times, found = [], []
        for q in queries:
            literal = "[" + ", ".join(f"{x:.7f}" for x in q) + f"]::FLOAT[{dim}]"
            sql = (f"SELECT id FROM items {where} ORDER BY array_cosine_distance(v, {literal})"
                   f" LIMIT {k}")
            t = time.perf_counter()
            rows = con.execute(sql).fetchall()
            times.append(time.perf_counter() - t)
            found.append([r[0] for r in rows])
        plan = con.execute("EXPLAIN SELECT id FROM items " + where + " ORDER BY"
                           f" array_cosine_distance(v, {literal}) LIMIT {k}").fetchall()
        results[name] = {
            "median_ms": round(statistics.median(times) * 1000, 2),
            "p99_ms": round(float(np.percentile(times, 99)) * 1000, 2),
            "ids": found,
            "uses_hnsw": "HNSW" in str(plan),
        }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
