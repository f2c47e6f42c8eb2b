"""DuckDB fetching a search's 10 rows by row id, in each way SQL can ask for them.

After FAISS, an index search asks DuckDB for its k rows by row id; on 1M rows that fetch is
half a search's time. This times, in plain DuckDB on the database a vector_index.py run left
behind (read only), the same 10 random row ids fetched each way, interleaved so the machine's
swings fall on all alike, and a single-row fetch and `SELECT 42` as floors. The engine uses
"semi-join, string list" (index_scan.restrict).

Run: .venv/bin/python benchmarks/row_fetch.py [RUN_FOLDER]
"""

from __future__ import annotations

import glob
import statistics
import sys
import time
from collections.abc import Callable

import duckdb
import numpy as np


def numbers(rows: list[int]) -> str:
    return ", ".join(map(str, rows))


def values(rows: list[int]) -> str:
    return ", ".join(f"({row}::BIGINT)" for row in rows)


SELECT = "SELECT id, rowid FROM items"
SHAPES: dict[str, Callable[[list[int]], str]] = {
    "semi-join, string list": lambda r: (
        f"{SELECT} WHERE rowid IN (SELECT unnest('[{numbers(r)}]'::BIGINT[])) LIMIT {len(r)}"),
    "semi-join, list literal": lambda r: (
        f"{SELECT} WHERE rowid IN (SELECT unnest([{numbers(r)}]::BIGINT[]))"),
    "semi-join, VALUES": lambda r: f"{SELECT} WHERE rowid IN (FROM (VALUES {values(r)}))",
    "join, VALUES": lambda r: (
        f"{SELECT} JOIN (VALUES {values(r)}) c(r) ON items.rowid = c.r"),
    "= ANY(list)": lambda r: f"{SELECT} WHERE rowid = ANY([{numbers(r)}]::BIGINT[])",
    "IN (constants)": lambda r: f"{SELECT} WHERE rowid IN ({numbers(r)})",
    "UNION ALL of points": lambda r: " UNION ALL ".join(
        f"{SELECT} WHERE rowid = {row}" for row in r),
    # Prepared once (see PREPARED): does skipping parse, bind and plan pay? DuckDB plans an
    # EXECUTE with its values again (the points' filters show them as constants).
    "EXECUTE semi-join": lambda r: f"EXECUTE semi_join('[{numbers(r)}]')",
    "EXECUTE UNION of points": lambda r: f"EXECUTE points({numbers(r)})",
    "one row (floor)": lambda r: f"{SELECT} WHERE rowid = {r[0]}",
    "SELECT 42 (floor)": lambda r: "SELECT 42",
}

PREPARED = [
    f"PREPARE semi_join AS {SELECT} WHERE rowid IN (SELECT unnest($1::BIGINT[])) LIMIT 10",
    "PREPARE points AS " + " UNION ALL ".join(f"{SELECT} WHERE rowid = ${i}"
                                               for i in range(1, 11)),
]


def main() -> None:
    work = sys.argv[1] if len(sys.argv) > 1 else sorted(
        glob.glob("/tmp/quarrydb-vectors-*/structured"))[-1]
    con = duckdb.connect(f"{work}/bench.quarry/quarry.duckdb", read_only=True)
    last = con.execute("SELECT max(rowid) FROM items").fetchone()[0]
    for statement in PREPARED:
        con.execute(statement)
    rng = np.random.default_rng(0)
    searches = [sorted(rng.choice(last + 1, 10, replace=False).tolist()) for _ in range(200)]
    times: dict[str, list[float]] = {name: [] for name in SHAPES}
    for round_ in range(3):
        for rows in searches:
            for name, shape in SHAPES.items():
                sql = shape(rows)
                started = time.perf_counter()
                con.execute(sql).fetchall()
                if round_:  # the first round warms
                    times[name].append(time.perf_counter() - started)
    for name, taken in times.items():
        print(f"{name:24}: median {statistics.median(taken) * 1000:6.3f} ms, p90"
              f" {float(np.percentile(taken, 90)) * 1000:6.3f} ms")


if __name__ == "__main__":
    main()
