"""An index search with its probe as a parameter (`similarity(v, ?)`), beside the same search
with the vector written into the SQL, on the database a vector_index.py run left behind.

The DB-API way to pass a vector is a parameter. Taking turns query by query, so the machine's
swings fall on both alike; the answers must be the same.

Run: .venv/bin/python benchmarks/parameter_probe.py [RUN_FOLDER]
"""

import glob
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np  # noqa: E402
import vector_index as vi  # noqa: E402

import quarrydb  # noqa: E402

PARAMETER_SQL = f"SELECT id FROM items ORDER BY similarity(v, ?) DESC LIMIT {vi.K}"


def timed(cur, sql: str, params=None) -> tuple[float, list]:
    started = time.perf_counter()
    cur.execute(sql, params)
    rows = cur.fetchall()
    return time.perf_counter() - started, rows


def main() -> None:
    work = sys.argv[1] if len(sys.argv) > 1 else sorted(
        glob.glob("/tmp/quarrydb-vectors-*/structured"))[-1]
    queries = np.load(f"{work}/queries.npy")
    cur = quarrydb.connect(f"{work}/bench.quarry").cursor()
    vi.timed_queries(cur, queries[:3], "")  # the first search loads the index
    written, as_parameter = [], []
    for _ in range(2):
        for q in queries:
            literal_sql = (f"SELECT id FROM items ORDER BY similarity(v, {vi.literal(q)}) DESC"
                           f" LIMIT {vi.K}")
            seconds, expected = timed(cur, literal_sql)
            written.append(seconds)
            seconds, found = timed(cur, PARAMETER_SQL, [q.tolist()])
            as_parameter.append(seconds)
            assert found == expected, "a parameter probe answered otherwise"
    print(f"vector written in the SQL: median {statistics.median(written) * 1000:.2f} ms;"
          f" as a parameter: median {statistics.median(as_parameter) * 1000:.2f} ms"
          f" ({len(written)} searches each, the same answers)")


if __name__ == "__main__":
    main()
