"""Embed a column of 2,000 real sentences three ways, side by side, and print the ratios.

1. quarrydb:   SELECT embed(body) FROM sentences       (fresh database: nothing cached)
2. direct:     the same loaded model, called in a loop at the same batch size, in table order
   (and once more over the texts sorted by length, as the engine batches them: pure overhead)
3. duckdb UDF: a DuckDB Python scalar UDF that calls the model row by row

Run: .venv/bin/python benchmarks/text_embedding.py [--rows 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

import quarrydb  # noqa: E402
from quarrydb.udfs import default_registry  # noqa: E402
from quarrydb.udfs.loaded_models import get_model  # noqa: E402

FORTUNES = Path("/usr/share/games/fortunes")


def sentences(count: int) -> list[str]:
    """Distinct real sentences from Debian's fortunes, in a fixed order."""
    seen: dict[str, None] = {}
    for path in sorted(FORTUNES.glob("*")):
        if path.suffix or not path.is_file():
            continue
        for quote in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            quote = " ".join(quote.split())
            if 20 < len(quote) < 300:
                seen.setdefault(quote, None)
    found = list(seen)
    if len(found) < count:
        raise SystemExit(f"only {len(found)} sentences found; install Debian 'fortunes'")
    return found[:count]


def run_engine(source: Path, texts: list[str]) -> float:
    con = quarrydb.connect()
    cur = con.cursor()
    cur.execute("CREATE TABLE sentences AS SELECT body FROM read_parquet(?)", [str(source)])
    started = time.perf_counter()
    cur.execute("SELECT embed(body) FROM sentences")
    rows = cur.fetch_arrow_table().num_rows
    elapsed = time.perf_counter() - started
    assert rows == len(texts) and cur.stats["model_inputs"] == len(texts)
    con.close()
    return elapsed


def run_direct(model, texts: list[str], batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        model.encode(texts[start : start + batch], batch_size=batch)
    return time.perf_counter() - started


def run_row_udf(model, texts: list[str]) -> float:
    con = duckdb.connect()
    con.register("sentences", pa.table({"body": texts}))
    con.create_function(
        "embed_row", lambda s: model.encode([s])[0].tolist(), ["VARCHAR"], "FLOAT[]",
        type="native", side_effects=False,
    )
    started = time.perf_counter()
    con.execute("SELECT embed_row(body) FROM sentences").fetchall()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--udf-rows", type=int, default=500,
                        help="rows for the row-by-row UDF (slow); its time is scaled per row")
    args = parser.parse_args()
    texts = sentences(args.rows)
    binding = default_registry().bind("embed")
    model = get_model(binding.model, "cpu")
    batch = binding.model.batch_size
    run_direct(model, texts[:128], batch)  # warm up threads and kernels

    source = Path(tempfile.mkdtemp()) / "sentences.parquet"
    pq.write_table(pa.table({"body": texts}), source)
    by_length = sorted(texts, key=len)
    engine, direct, direct_sorted = [], [], []
    for _ in range(args.repeats):  # interleaved, so drift hits all alike
        engine.append(run_engine(source, texts))
        direct.append(run_direct(model, texts, batch))
        direct_sorted.append(run_direct(model, by_length, batch))
    udf = run_row_udf(model, texts[: args.udf_rows]) * len(texts) / args.udf_rows

    e, d = statistics.median(engine), statistics.median(direct)
    ds = statistics.median(direct_sorted)
    print(f"rows={len(texts)} batch={batch} repeats={args.repeats} torch_threads="
          f"{__import__('torch').get_num_threads()}")
    rounded = {k: [round(x, 2) for x in v] for k, v in
               {"engine": engine, "direct": direct, "sorted": direct_sorted}.items()}
    engine, direct, direct_sorted = rounded["engine"], rounded["direct"], rounded["sorted"]
    print(f"quarrydb SQL      : {e:7.2f} s  ({len(texts) / e:6.0f} rows/s)  runs {engine}")
    print(f"direct loop       : {d:7.2f} s  ({len(texts) / d:6.0f} rows/s)  runs {direct}")
    print(f"direct, sorted    : {ds:7.2f} s  ({len(texts) / ds:6.0f} rows/s)  runs {direct_sorted}")
    print(f"duckdb row UDF    : {udf:7.2f} s  ({len(texts) / udf:6.0f} rows/s)"
          f"  (measured on {args.udf_rows} rows)")
    print(f"engine / direct   : {e / d:.3f}")
    print(f"engine / sorted   : {e / ds:.3f}   (the engine's own overhead)")
    print(f"row UDF / engine  : {udf / e:.1f}  (how many times slower the row-by-row UDF is)")


if __name__ == "__main__":
    main()
