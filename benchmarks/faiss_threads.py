"""FAISS alone, one probe at a time, with OpenMP on two threads and on one, alternating.

The engine searches one probe with OpenMP on one thread (vector_index.one_openmp_thread): FAISS
cannot split a single probe, and with two threads it waits on the second one's barrier, which
on a busy machine costs a scheduler slice. Run it while the machine is quiet and while another
process keeps a core busy.

Run: .venv/bin/python benchmarks/faiss_threads.py [RUN_FOLDER] [--ef 96]
"""

from __future__ import annotations

import argparse
import glob
import statistics
import time

import faiss
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="a vector_index.py run's folder")
    parser.add_argument("--ef", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = args.run or sorted(glob.glob("/tmp/quarrydb-vectors-*/structured"))[-1]
    index = faiss.read_index(glob.glob(f"{work}/bench.quarry/indexes/*/index.faiss")[0])
    probes = np.load(f"{work}/queries.npy").astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    params = faiss.SearchParametersHNSW()
    params.efSearch = args.ef
    for round_ in range(args.rounds):
        for threads in (2, 1):
            faiss.omp_set_num_threads(threads)
            taken = []
            for probe in probes:
                started = time.perf_counter()
                index.search(probe[None, :], 10, params=params)
                taken.append(time.perf_counter() - started)
            print(f"round {round_}: {threads} thread(s) median"
                  f" {statistics.median(taken) * 1000:.2f} ms, p99"
                  f" {float(np.percentile(taken, 99)) * 1000:.2f} ms", flush=True)


if __name__ == "__main__":
    main()
