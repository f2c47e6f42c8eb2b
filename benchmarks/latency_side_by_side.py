"""Search latency through SQL: this checkout against a baseline checkout, query by query.

Two worker processes, one per checkout, each on its own copy of the database a
vector_index.py run left behind, take turns on the same queries, a block of them at a time
(which side goes first alternates; the first query of each block, which finds the caches
full of the other side's data, is not counted). A machine that slows down for a minute slows
both sides alike: timing one side after the other, minutes apart, could not promise that,
and on a noisy 2-core machine the swing between such runs (1-2 ms) is larger than the
changes worth measuring.

Reports each side's median and p99, the ratio of the medians and the median of the
per-query ratios, and how many answers were the same on both sides (both search the same
index file, so all of them should be).

Setup of a baseline (any commit), as a package named quarrydb:
    git worktree add /tmp/base <commit>
    mkdir -p /tmp/basepkg && ln -s /tmp/base /tmp/basepkg/quarrydb
Run: .venv/bin/python benchmarks/latency_side_by_side.py /tmp/basepkg [RUN_FOLDER] [--ef 96]
     [--where 'bucket < 10']
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from vector_index import K, literal  # noqa: E402

WARM_QUERIES = 5


def worker(database: str, queries_path: str, ef: int, where: str) -> None:
    """Answer 'query number' lines on stdin with the time and ids of that search."""
    import quarrydb

    queries = np.load(queries_path)
    condition = f"WHERE {where}" if where else ""
    sqls = [f"SELECT id FROM items {condition} ORDER BY similarity(v, {literal(q)}) DESC"
            f" LIMIT {K}" for q in queries]
    con = quarrydb.connect(database)
    cur = con.cursor()
    cur.execute(sqls[0]).fetchall()  # loads the index
    con._database.loaded_indexes["item_vec"].options.ef_search = ef
    for sql in sqls[:WARM_QUERIES]:
        cur.execute(sql).fetchall()
    print("ready", flush=True)
    for line in sys.stdin:
        sql = sqls[int(line)]
        started = time.perf_counter()
        cur.execute(sql)
        ids = [row[0] for row in cur.fetchall()]
        print(json.dumps({"s": time.perf_counter() - started, "ids": ids}), flush=True)
    con.close()


def start(source: str | None, database: Path, queries: Path, ef: int, where: str
          ) -> subprocess.Popen:
    env = dict(os.environ)
    if source:
        env["PYTHONPATH"] = source
    process = subprocess.Popen(
        [sys.executable, __file__, "--worker", str(database), str(queries), str(ef), where],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        raise SystemExit(f"the worker for {source or 'this checkout'} did not start")
    return process


def ask(process: subprocess.Popen, number: int) -> dict:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(f"{number}\n")
    process.stdin.flush()
    return json.loads(process.stdout.readline())


def ms(times: list[float]) -> str:
    return (f"median {statistics.median(times) * 1000:6.2f} ms,"
            f" p99 {float(np.percentile(times, 99)) * 1000:6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", help="a folder with the baseline's code as package quarrydb")
    parser.add_argument("run", nargs="?", help="a vector_index.py run's folder"
                        " (default: the latest /tmp/quarrydb-vectors-*/structured)")
    parser.add_argument("--ef", type=int, default=96, help="the HNSW index's ef_search")
    parser.add_argument("--rounds", type=int, default=3, help="times through the queries")
    parser.add_argument("--block", type=int, default=10, help="queries a side runs in a turn")
    parser.add_argument("--where", default="", help="a filter, e.g. 'bucket < 10' (1%%)")
    args = parser.parse_args()
    run = Path(args.run or sorted(glob.glob("/tmp/quarrydb-vectors-*/structured"))[-1])
    queries = run / "queries.npy"
    count = len(np.load(queries))
    with tempfile.TemporaryDirectory(prefix="quarrydb-side-by-side-", dir=run) as scratch:
        copy = Path(scratch) / "bench.quarry"
        shutil.copytree(run / "bench.quarry", copy)
        sides = {"baseline": start(args.baseline, copy, queries, args.ef, args.where),
                 "this checkout": start(None, run / "bench.quarry", queries, args.ef,
                                        args.where)}
        times: dict[str, list[float]] = {name: [] for name in sides}
        same = 0
        for turn, first in enumerate(range(0, args.rounds * count, args.block)):
            numbers = [n % count for n in range(first, first + args.block)]
            order = list(sides) if turn % 2 == 0 else list(reversed(sides))
            answers = {name: [ask(sides[name], n) for n in numbers] for name in order}
            for name, answered in answers.items():
                times[name] += [answer["s"] for answer in answered[1:]]
            same += sum(a["ids"] == b["ids"]
                        for a, b in zip(answers["baseline"], answers["this checkout"]))
        for process in sides.values():
            assert process.stdin is not None
            process.stdin.close()
            process.wait()
    base, this = times["baseline"], times["this checkout"]
    print(f"{run}: {count} queries x {args.rounds} rounds, ef_search {args.ef},"
          f" {'WHERE ' + args.where if args.where else 'unfiltered'}, taking turns"
          f" {args.block} queries at a time ({len(base)} timed on each side)")
    for name, side in times.items():
        print(f"  {name:14}: {ms(side)}")
    paired = np.array(this) / np.array(base)
    print(f"  this / baseline: medians {statistics.median(this) / statistics.median(base):.3f},"
          f" median of per-query ratios {float(np.median(paired)):.3f};"
          f" same answers {same} of {args.rounds * count}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        main()
