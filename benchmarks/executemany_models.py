"""executemany with a model call over parameters: this checkout against a baseline, side by side.

`executemany("INSERT INTO notes VALUES (?, ?, embed(?))", rows)` on a fresh in-memory database,
each run in a process of its own (so no side finds the other's cache), the two sides taking
turns round by round: a machine that slows down for a minute slows both alike.

Setup of a baseline (any commit), as a package named quarrydb:
    git worktree add /tmp/base <commit>
    mkdir -p /tmp/basepkg && ln -s /tmp/base /tmp/basepkg/quarrydb
Run: .venv/bin/python benchmarks/executemany_models.py /tmp/basepkg [--rows 100] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent

ONE_RUN = """
import time, quarrydb
rows = [(i, f"support note {i}: the invoice for order {i * 7} is wrong", None)
        for i in range({rows})]
rows = [(i, text, text) for i, text, _ in rows]
con = quarrydb.connect()
con.execute("SELECT embed('load the model first')")
con.execute("CREATE TABLE notes (id INTEGER, body VARCHAR, v FLOAT[384])")
started = time.perf_counter()
con.executemany("INSERT INTO notes VALUES (?, ?, embed(?))", rows)
taken = time.perf_counter() - started
assert con.execute("SELECT count(v) FROM notes").fetchall() == [({rows},)]
print(taken)
"""


def one_run(package_root: Path, rows: int) -> float:
    """Seconds one executemany of `rows` rows takes with the quarrydb under `package_root`."""
    env = dict(os.environ, PYTHONPATH=str(package_root))
    done = subprocess.run([sys.executable, "-c", ONE_RUN.replace("{rows}", str(rows))],
                          capture_output=True, text=True, env=env, check=True, cwd="/tmp")
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", help="a folder holding the baseline as package quarrydb")
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    this = Path("/tmp/quarrydb-executemany-self")
    this.mkdir(exist_ok=True)
    link = this / "quarrydb"
    if not link.exists():
        link.symlink_to(CHECKOUT)
    times: dict[str, list[float]] = {"baseline": [], "this checkout": []}
    for round_ in range(args.rounds):
        sides = [("baseline", Path(args.baseline)), ("this checkout", this)]
        for name, root in sides if round_ % 2 == 0 else sides[::-1]:
            times[name].append(one_run(root, args.rows))
            print(f"round {round_} {name:13}: {times[name][-1]:7.2f} s", flush=True)
    base, mine = (statistics.median(times[k]) for k in ("baseline", "this checkout"))
    print(f"{args.rows} rows, median of {args.rounds}: baseline {base:.2f} s, this checkout"
          f" {mine:.2f} s; this / baseline {mine / base:.3f}")


if __name__ == "__main__":
    main()
