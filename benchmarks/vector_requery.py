"""SQL latency along ef_search, again, on the database a vector_index.py run left behind.

The run's folder (/tmp/quarrydb-vectors-*/structured) keeps its vectors, queries and the
quarrydb database with the last index built (HNSW, after the insert rounds and their DELETE).

Run: .venv/bin/python benchmarks/vector_requery.py [RUN_FOLDER]
"""
import glob
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import vector_index as vi  # noqa: E402

import quarrydb  # noqa: E402

work = sys.argv[1] if len(sys.argv) > 1 else sorted(
    glob.glob("/tmp/quarrydb-vectors-*/structured"))[-1]
table = pq.read_table(f"{work}/vectors.parquet")
ids = table.column("id").to_numpy()
vectors = np.stack(table.column("v").combine_chunks().flatten().to_numpy().reshape(len(ids), -1))
unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
queries = np.load(f"{work}/queries.npy")
truth = [vi.exact(unit, q, None) for q in queries]
del vectors, unit
con = quarrydb.connect(f"{work}/bench.quarry")
cur = con.cursor()
vi.timed_queries(cur, queries[:3], "")
index = con._database.loaded_indexes["item_vec"]
for round_ in range(2):
    for ef in (64, 96, 128):
        index.options.ef_search = ef
        faiss_times = []
        for q in queries:
            started = time.perf_counter()
            index.search(q, vi.K)
            faiss_times.append(time.perf_counter() - started)
        vi.timed_queries(cur, queries[:3], "")
        times, found = vi.timed_queries(cur, queries, "")
        print(f"round {round_} ef_search={ef}: FAISS alone {vi.ms(faiss_times)}; SQL"
              f" {vi.ms(times)}, recall@10 {vi.recall(found, truth):.3f}", flush=True)
