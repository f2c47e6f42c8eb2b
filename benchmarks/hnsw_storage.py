"""HNSW over full vectors against HNSW over 8-bit and 16-bit codes, FAISS alone.

A question a newcomer asks first: would a graph over scalar-quantized vectors (FAISS
IndexHNSWSQ) search faster, as each distance reads 4x (8-bit) or 2x (fp16) fewer bytes?
This builds the three side by side (m 32, efConstruction 80, the engine's defaults) on the
first N vectors of a vector_index.py run, searches the same 100 queries with each at several
ef_search, and reports median latency and recall@10 (the quantized ones re-scored exactly over
40 candidates, as the engine would have to).

Run: .venv/bin/python benchmarks/hnsw_storage.py [RUN_FOLDER] [--rows 300000]
"""

from __future__ import annotations

import argparse
import glob
import statistics
import time

import faiss
import numpy as np
import pyarrow.parquet as pq

M, EF_CONSTRUCTION, K, RESCORED = 32, 80, 10, 40


def storages(dim: int) -> dict[str, faiss.Index]:
    ip = faiss.METRIC_INNER_PRODUCT
    return {"full vectors": faiss.IndexHNSWFlat(dim, M, ip),
            "8-bit codes": faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, M, ip),
            "fp16 codes": faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_fp16, M, ip)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="a vector_index.py run's folder")
    parser.add_argument("--rows", type=int, default=300_000)
    args = parser.parse_args()
    work = args.run or sorted(glob.glob("/tmp/quarrydb-vectors-*/structured"))[-1]
    table = pq.read_table(f"{work}/vectors.parquet").slice(0, args.rows)
    vectors = table.column("v").combine_chunks().flatten().to_numpy().reshape(args.rows, -1)
    vectors = np.ascontiguousarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
                                   dtype=np.float32)
    queries = np.load(f"{work}/queries.npy").astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = [set(np.argsort(-(vectors @ q))[:K]) for q in queries]
    built = storages(vectors.shape[1])
    for name, index in built.items():
        index.hnsw.efConstruction = EF_CONSTRUCTION
        started = time.perf_counter()
        if not index.is_trained:
            index.train(vectors[:50_000])
        index.add(vectors)
        print(f"{name:13}: built in {time.perf_counter() - started:.1f} s", flush=True)
    for round_ in range(2):
        for ef in (64, 96, 128):
            for name, index in built.items():
                params = faiss.SearchParametersHNSW(efSearch=ef)
                wanted = K if name == "full vectors" else RESCORED
                times, hits = [], []
                for q in queries:
                    started = time.perf_counter()
                    _, ids = index.search(q[None], wanted, params=params)
                    times.append(time.perf_counter() - started)
                    found = ids[0][np.argsort(-(vectors[ids[0]] @ q))][:K]
                    hits.append(len(set(found.tolist()) & truth[len(hits)]) / K)
                print(f"round {round_} ef_search {ef:3} {name:13}: median"
                      f" {statistics.median(times) * 1000:.3f} ms, recall@10"
                      f" {np.mean(hits):.3f}", flush=True)


if __name__ == "__main__":
    main()
