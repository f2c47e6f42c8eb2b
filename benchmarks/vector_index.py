"""Vector indexes at scale: build time, latency, recall@10, filters, incremental inserts, vss.

On N random vectors (default 1,000,000 x 384, seeded) in a quarrydb table (a FLOAT[384]
column), for each index kind: build time; query latency (median, p99) through SQL and of the
FAISS search alone; recall@10 against exact search — unfiltered and with filters that keep 1%
and 10% of rows — and the rows each query returned. Then 1% more rows are inserted, the INSERT
(which keeps the index current) timed against a full build. With --vss-python, DuckDB's vss
extension (HNSW) runs the same vectors and queries side by side. Real embeddings: --real.

Two kinds of random data (--data):
- gaussian:   i.i.d. normal coordinates. Every point is almost as far from a query as every
              other (nearest cosine ~0.27, typical 0 +- 0.05): nearest neighbours are noise and
              no graph or cluster index finds them cheaply. Kept as the worst case.
- structured: a random 24-d Gaussian latent spread over 384 dimensions by a random orthonormal
              map, plus noise of 0.3 per coordinate. Measured on 12,980 real MiniLM embeddings
              of Debian fortunes and on this data at the same size: nearest-neighbour cosine
              0.62 (real) vs 0.65, TwoNN intrinsic dimension 9.4 (real) vs 25 — neighbours as
              close as in real embeddings, in a space 2.7x harder to search.

Run: .venv/bin/python benchmarks/vector_index.py [--rows 1000000] [--data structured,gaussian]
     [--vss-python /path/python]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

import quarrydb  # noqa: E402

K = 10
FILTERS = {"unfiltered": None, "1%": 10, "10%": 100}  # bucket < n keeps n/1000 of the rows
KIND_OPTIONS = {"flat": "kind = 'flat'", "ivf": "kind = 'ivf', nlist = 1024, nprobe = 64",
                "hnsw": "kind = 'hnsw'"}  # HNSW with the engine's defaults (m 32, efc 80)
STRUCTURED_LATENT, STRUCTURED_NOISE = 24, 0.3
CHECKPOINT_EVERY = 3  # rounds, in the insert period where both sides checkpoint alike


def random_vectors(data: str, rows: int, dim: int, seed: int) -> np.ndarray:
    """Seeded random vectors of the named kind (see the module docstring)."""
    rng = np.random.default_rng(seed)
    if data == "gaussian":
        return rng.standard_normal((rows, dim)).astype(np.float32)
    basis = np.linalg.qr(np.random.default_rng(12345).standard_normal(
        (dim, STRUCTURED_LATENT)))[0].T.astype(np.float32)  # the same map for every seed
    latent = rng.standard_normal((rows, STRUCTURED_LATENT)).astype(np.float32)
    spread = latent @ basis * np.float32(np.sqrt(dim / STRUCTURED_LATENT))
    return spread + STRUCTURED_NOISE * rng.standard_normal((rows, dim)).astype(np.float32)


def literal(vector: np.ndarray) -> str:
    return "[" + ", ".join(f"{x:.7f}" for x in vector) + f"]::FLOAT[{len(vector)}]"


def exact(unit: np.ndarray, query: np.ndarray, allowed: np.ndarray | None) -> list[int]:
    scores = unit @ (query / np.linalg.norm(query))
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)
    top = np.argpartition(-scores, K)[:K]
    return top[np.argsort(-scores[top])].tolist()


def recall(found: list[list[int]], truth: list[list[int]]) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def timed_queries(cur, queries: np.ndarray, where: str) -> tuple[list[float], list[list[int]]]:
    times, found = [], []
    for q in queries:
        sql = f"SELECT id FROM items {where} ORDER BY similarity(v, {literal(q)}) DESC LIMIT {K}"
        started = time.perf_counter()
        cur.execute(sql)
        rows = cur.fetchall()
        times.append(time.perf_counter() - started)
        found.append([r[0] for r in rows])
    return times, found


def ms(times: list[float]) -> str:
    return (f"median {statistics.median(times) * 1000:7.2f} ms, p99"
            f" {float(np.percentile(times, 99)) * 1000:7.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--data", default="structured,gaussian",
                        help="comma-separated: structured, gaussian")
    parser.add_argument("--kinds", default="flat,ivf,hnsw")
    parser.add_argument("--hnsw", default=KIND_OPTIONS["hnsw"], help="the HNSW index's WITH")
    parser.add_argument("--ef-sweep", default="16,32,64,96,128,256")
    parser.add_argument("--insert-rounds", type=int, default=0,
                        help="also insert 1%% again and again, at most this many times, until"
                             " the snapshot is rewritten (see amortized_inserts)")
    parser.add_argument("--vss-python", help="a Python with duckdb + duckdb-extension-vss")
    parser.add_argument("--real", action="store_true",
                        help="also: real MiniLM embeddings of Debian fortunes (one HNSW index)")
    args = parser.parse_args()
    KIND_OPTIONS["hnsw"] = args.hnsw
    work = Path(tempfile.mkdtemp(prefix="quarrydb-vectors-"))
    for data in args.data.split(","):
        run_data(data, args, work / data)
    if args.real:
        real_embeddings()


def run_data(data: str, args: argparse.Namespace, work: Path) -> None:
    """Every measurement on one kind of random data."""
    work.mkdir(parents=True)
    vectors = random_vectors(data, args.rows, args.dim, seed=0)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    buckets = np.arange(args.rows) % 1000
    queries = random_vectors(data, args.queries, args.dim, seed=1)
    parquet = work / "vectors.parquet"
    write_parquet(parquet, np.arange(args.rows), buckets, vectors)
    del vectors
    np.save(work / "queries.npy", queries)
    truth = {name: [exact(unit, q, None if n is None else buckets < n) for q in queries]
             for name, n in FILTERS.items()}
    print(f"\n=== {data} random vectors: rows={args.rows} dim={args.dim}"
          f" queries={args.queries} k={K}")

    con = quarrydb.connect(work / "bench.quarry")
    cur = con.cursor()
    cur.execute(f"CREATE TABLE items AS SELECT id, bucket, v::FLOAT[{args.dim}] AS v"
                f" FROM read_parquet('{parquet}')")
    for kind in filter(None, args.kinds.split(",")):  # --kinds "": only the vss side
        cur.execute("DROP INDEX IF EXISTS item_vec")
        started = time.perf_counter()
        cur.execute(f"CREATE INDEX item_vec ON items USING faiss (v) WITH ({KIND_OPTIONS[kind]})")
        build = time.perf_counter() - started
        print(f"\n[{kind}] ({KIND_OPTIONS[kind]}) build {build:.1f} s")
        index = con._database.loaded_indexes["item_vec"]
        search_times = []
        for q in queries:
            started = time.perf_counter()
            index.search(q, K)
            search_times.append(time.perf_counter() - started)
        print(f"  FAISS search alone          : {ms(search_times)}")
        if kind == "hnsw":  # recall against latency as the search widens
            pairs = cur.execute("SELECT rowid, id FROM items").fetch_arrow_table()
            row_ids = pairs.column("rowid").to_numpy()
            id_of_row = np.zeros(int(row_ids.max()) + 1, dtype=np.int64)
            id_of_row[row_ids] = pairs.column("id").to_numpy()
            chosen = index.options.ef_search
            for ef in (int(e) for e in args.ef_sweep.split(",")):
                index.options.ef_search = ef
                times, found = [], []
                for q in queries:
                    started = time.perf_counter()
                    _, vids = index.search(q, K)
                    times.append(time.perf_counter() - started)
                    found.append(id_of_row[index.row_ids(vids)].tolist())
                timed_queries(cur, queries[:3], "")
                sql_times, _ = timed_queries(cur, queries, "")
                print(f"  FAISS search ef_search={ef:<4}: {ms(times)},"
                      f" recall@10 {recall(found, truth['unfiltered']):.3f}; through SQL"
                      f" {ms(sql_times)}")
            index.options.ef_search = chosen
        for name, n in FILTERS.items():
            where = "" if n is None else f"WHERE bucket < {n}"
            timed_queries(cur, queries[:3], where)  # warm: the first query loads and syncs
            times, found = timed_queries(cur, queries, where)
            wanted = min(K, args.rows if n is None else int((buckets < n).sum()))
            short = sum(len(f) < wanted for f in found)
            print(f"  SQL {name:10} : {ms(times)}, recall@10 {recall(found, truth[name]):.3f},"
                  f" queries returning < k rows: {short}")
        plain = baseline_copy(cur, work, queries)
        added = args.rows // 100
        extra_parquet = work / "extra.parquet"
        write_parquet(extra_parquet, np.arange(args.rows, args.rows + added),
                      np.zeros(added, dtype=np.int64),
                      random_vectors(data, added, args.dim, seed=2))
        incremental, alone = insert_both(cur, plain, extra_parquet, args.dim)
        started = time.perf_counter()
        timed_queries(cur, queries[:1], "")
        first_query = time.perf_counter() - started
        # New vectors are searched beside a flat or HNSW index until its snapshot is next
        # rewritten (after 10% of the rows changed for HNSW, 100% for flat); joining
        # them and writing the snapshot then is counted here in full against this one insert:
        # a pessimistic bound (the rounds below spread it over the inserts it serves).
        started = time.perf_counter()
        con._database.loaded_indexes["item_vec"].save(work / "timing-snapshot.faiss")
        deferred = time.perf_counter() - started
        (work / "timing-snapshot.faiss").unlink()
        # That save changed the index in memory (its fresh vectors joined the graph), not its
        # files nor the catalog: it is read from them again when next used.
        con._database.loaded_indexes.pop("item_vec")
        con._database.forget_syncs("item_vec")
        # A rebuild of 101% of the rows costs what the build of 100% cost: that is the reference.
        upkeep = max(incremental - alone, 0.0) + deferred
        print(f"  +1% rows ({added}): INSERT incl. index update {incremental:.2f} s (DuckDB alone"
              f" {alone:.2f} s; next query {first_query:.2f} s), joining the main index and"
              f" writing its snapshot later {deferred:.2f} s; a full build took {build:.1f} s ->"
              f" the index's share {upkeep / build * 100:.1f}% of a rebuild")
        for connection in (cur, plain):
            connection.execute(f"DELETE FROM items WHERE id >= {args.rows}")
        for checkpoint_every in ((None, CHECKPOINT_EVERY) if args.insert_rounds else ()):
            amortized_inserts(cur, plain, data, args, work, build, checkpoint_every)
            for connection in (cur, plain):
                connection.execute(f"DELETE FROM items WHERE id >= {args.rows}")
        plain.close()
    con.close()

    if args.vss_python:
        out = subprocess.run([args.vss_python, str(Path(__file__).with_name("vss_side.py")),
                              str(parquet), str(work / "queries.npy"), str(K)],
                             capture_output=True, text=True, check=True)
        vss = json.loads(out.stdout)
        print(f"\n[duckdb vss {vss['version']}, HNSW] build {vss['build_s']:.1f} s")
        for name, n in FILTERS.items():
            part = vss[name]
            wanted = min(K, args.rows if n is None else int((buckets < n).sum()))
            short = sum(len(f) < wanted for f in part["ids"])
            print(f"  SQL {name:10} : median {part['median_ms']:7.2f} ms, p99 {part['p99_ms']:7.2f}"
                  f" ms, recall@10 {recall(part['ids'], truth[name]):.3f}, queries returning < k"
                  f" rows: {short}, index used: {part['uses_hnsw']}")


def baseline_copy(cur, work: Path, queries: np.ndarray) -> duckdb.DuckDBPyConnection:
    """The baseline for inserts: plain DuckDB, no index, on a copy of this very database file
    (checkpointed first), so its row groups and checkpoints fall as the original's do."""
    cur.execute("CHECKPOINT")
    timed_queries(cur, queries[:1], "")  # the index notices the checkpoint before the copy
    copy = work / "baseline.duckdb"
    copy.unlink(missing_ok=True)
    shutil.copyfile(cur.connection._database.directory / "quarry.duckdb", copy)
    return duckdb.connect(str(copy))


def insert_both(cur, plain, path: Path, dim: int) -> tuple[float, float]:
    """The same INSERT through quarrydb (which keeps the index current) and into the plain
    DuckDB baseline: (seconds with the index, seconds for DuckDB alone)."""
    sql = f"INSERT INTO items SELECT id, bucket, v::FLOAT[{dim}] FROM read_parquet('{path}')"
    return timed_statement(cur, sql), timed_statement(plain, sql)


def timed_statement(connection, sql: str) -> float:
    started = time.perf_counter()
    connection.execute(sql)
    return time.perf_counter() - started


def amortized_inserts(cur, plain, data: str, args: argparse.Namespace, work: Path,
                      build: float, checkpoint_every: int | None) -> None:
    """1% more rows, again and again, until one INSERT rewrites the snapshot (joining the new
    vectors into the main index): a whole period of the upkeep. Each INSERT saves a small delta
    file; a DuckDB checkpoint at its commit (every 16 MB of log) may move row ids, and then that
    INSERT diffs the rows that may have moved. The same INSERTs into plain DuckDB are the
    baseline: what is left is the index's share. One query after the rounds shows whether any
    work was left for it (it should find none); its time counts too. The counts printed must
    agree.

    A DuckDB checkpoint costs 0.4-10 s here, by where it falls against the filling of a row
    group, and the index's own small commit after each INSERT moves where the 16 MB fall (plain
    DuckDB with one more small commit a round, or with a 32 MB threshold, pays the same). With
    `checkpoint_every`, both sides checkpoint after the same rounds instead, so DuckDB's
    work is alike on both and the difference is the index's."""
    added, times, alone = args.rows // 100, [], []
    if checkpoint_every:
        for connection in (cur, plain):
            connection.execute("SET checkpoint_threshold = '1TB'")
    index = cur.connection._database.loaded_indexes["item_vec"]
    queries = random_vectors(data, 2, args.dim, seed=1)
    timed_queries(cur, queries[:1], "")
    normal_query = timed_queries(cur, queries[1:], "")[0][0]
    for round_ in range(args.insert_rounds):
        start = args.rows + (round_ + 1) * added
        path = work / f"round-{round_}.parquet"
        write_parquet(path, np.arange(start, start + added), np.zeros(added, dtype=np.int64),
                      random_vectors(data, added, args.dim, seed=10 + round_))
        with_index, plain_time = insert_both(cur, plain, path, args.dim)
        if checkpoint_every and (round_ + 1) % checkpoint_every == 0:
            with_index += timed_statement(cur, "CHECKPOINT")
            plain_time += timed_statement(plain, "CHECKPOINT")
        times.append(with_index)
        alone.append(plain_time)
        if round_ and snapshot_rewritten(cur):
            break
    if checkpoint_every:
        for connection in (cur, plain):
            connection.execute("RESET checkpoint_threshold")
    after = timed_queries(cur, queries[1:], "")[0][0]
    left_for_the_query = max(after - normal_query, 0.0)
    mean = (sum(times) + left_for_the_query) / len(times)
    upkeep = max(mean - statistics.mean(alone), 0.0)
    table_rows = cur.execute("SELECT count(*) FROM items").fetchone()[0]
    rewrote = "the last rewrote the snapshot" if snapshot_rewritten(cur) else (
        "none rewrote the snapshot: raise --insert-rounds")
    checkpoints = ("DuckDB's own checkpoints" if not checkpoint_every else
                   f"both sides checkpoint every {checkpoint_every} rounds")
    print(f"  {len(times)} rounds of +1% rows ({checkpoints}; {rewrote}): each"
          f" {', '.join(f'{t:.2f}' for t in times)} s; DuckDB alone each"
          f" {', '.join(f'{t:.2f}' for t in alone)} s; the next query {after:.2f} s (normally"
          f" {normal_query:.3f} s); mean {mean:.2f} s, DuckDB alone {statistics.mean(alone):.2f}"
          f" s -> the index's share {upkeep / build * 100:.1f}% of a rebuild, all of it"
          f" {mean / build * 100:.1f}% (now: {table_rows} rows, {index.size} indexed,"
          f" {len(index.fresh_ids)} beside the main index)")


def snapshot_rewritten(cur) -> bool:
    """Whether the last change rewrote the index's snapshot (no change saved beside it)."""
    info = cur._session.vectors.info("item_vec")
    return info is not None and not info.deltas


def write_parquet(path: Path, ids: np.ndarray, buckets: np.ndarray, vectors: np.ndarray) -> None:
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    pq.write_table(pa.table({"id": pa.array(ids), "bucket": pa.array(buckets), "v": column}),
                   path)


def real_embeddings() -> None:
    """Recall on real MiniLM embeddings of Debian fortunes (clustered, unlike random data)."""
    from quarrydb.udfs import default_registry
    from quarrydb.udfs.loaded_models import get_model

    texts = []
    for path in sorted(Path("/usr/share/games/fortunes").glob("*")):
        if path.suffix or not path.is_file():
            continue
        texts += [" ".join(q.split()) for q in path.read_text(errors="replace").split("\n%\n")
                  if 20 < len(q.strip()) < 300]
    texts = sorted(set(texts))
    model = get_model(default_registry().bind("embed").model, "cpu")
    vectors = model.encode(texts)
    queries = model.encode([f"a saying about {w}" for w in
                            ("money", "love", "computers", "food", "war", "sleep", "cats",
                             "science", "music", "friends")])
    con = quarrydb.connect()
    cur = con.cursor()
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    cur.register("src", pa.table({"id": pa.array(range(len(texts))), "v": column}))
    cur.execute(f"CREATE TABLE items AS SELECT id, v::FLOAT[{vectors.shape[1]}] AS v FROM src")
    cur.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'hnsw', m = 16)")
    times, found = timed_queries(cur, queries, "")
    truth = [exact(vectors, q, None) for q in queries]
    print(f"\n[real MiniLM embeddings of {len(texts)} fortunes, hnsw m=16] {ms(times)},"
          f" recall@10 {recall(found, truth):.3f}")


if __name__ == "__main__":
    main()
