"""The model-aware optimizer against its own baseline (SET optimizer = off), query by query.

A fixed mix over real texts (Debian fortunes) and the sample media folder: for each query, the
values sent to models and the time, with the optimizer and without, and whether the answers
agree. Each run uses a fresh in-memory database, so nothing is cached between runs.

Run: .venv/bin/python benchmarks/optimizer.py
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import quarrydb  # noqa: E402
from quarrydb.connectors.sample_media import write_sample_media  # noqa: E402

TOPICS = ["computers", "food", "science", "sports", "medicine", "love", "politics", "education"]
LABELS = ", ".join(f"'{t}'" for t in TOPICS)


def quotes(per_topic: int = 50) -> list[tuple[int, str, str]]:
    rows = []
    for topic in TOPICS:
        raw = Path(f"/usr/share/games/fortunes/{topic}").read_text(errors="replace")
        found = [" ".join(q.split()) for q in raw.split("\n%\n") if 20 < len(q.strip()) < 400]
        random.Random(0).shuffle(found)
        rows += [(len(rows) + i, q, topic) for i, q in enumerate(found[:per_topic])]
    return rows


def queries(media: Path) -> list[tuple[str, str]]:
    return [
        ("cheap + model predicate",
         f"SELECT id FROM quotes WHERE topic = 'food' AND classify(body, [{LABELS}]) = 'food'"),
        ("two model predicates",
         f"SELECT id FROM quotes WHERE classify(body, ['words', 'silence']) <> 'nothing'"
         f" AND classify(body, [{LABELS}]) = 'love'"),
        ("one call in SELECT, WHERE, ORDER BY",
         f"SELECT id, classify(body, [{LABELS}]) FROM quotes WHERE classify(body, [{LABELS}])"
         f" = 'science' ORDER BY classify(body, [{LABELS}]), id"),
        ("LIMIT without ORDER BY",
         f"SELECT id FROM quotes WHERE classify(body, [{LABELS}]) = 'sports' LIMIT 5"),
        ("semantic join (40 x 8)",
         f"SELECT q.id, t.topic FROM (SELECT * FROM quotes WHERE id % 10 = 0) q"
         f" JOIN topics t ON classify(q.body, [{LABELS}]) = classify(t.topic, [{LABELS}])"),
        ("media: kind filter before the model",
         f"SELECT path FROM read_media('{media}/**/*') WHERE kind = 'image'"
         f" AND classify(path, ['cat', 'coffee', 'rocket']) = 'cat'"),
    ]


def run(sql: str, optimizer: str, data: list[tuple[int, str, str]]) -> tuple[list, int, float]:
    con = quarrydb.connect()
    cur = con.cursor()
    cur.execute("CREATE TABLE quotes (id INTEGER, body VARCHAR, topic VARCHAR)")
    cur.executemany("INSERT INTO quotes VALUES (?, ?, ?)", data)
    cur.execute(f"CREATE TABLE topics AS SELECT unnest([{LABELS}]) AS topic")
    cur.execute(f"SET optimizer = {optimizer}")
    started = time.perf_counter()
    cur.execute(sql)
    rows = cur.fetchall()
    elapsed = time.perf_counter() - started
    calls = cur.stats["model_inputs"]
    con.close()
    return rows, calls, elapsed


def main() -> None:
    data = quotes()
    media = write_sample_media(Path(tempfile.mkdtemp()) / "media").root
    run("SELECT classify('warm up', ['a', 'b'])", "on", data[:1])
    totals = {"on": [0, 0.0], "off": [0, 0.0]}
    print(f"{'query':38} {'calls on':>9} {'calls off':>9} {'ratio':>7} {'s on':>7} {'s off':>7}"
          "  answers")
    for name, sql in queries(media):
        rows_on, calls_on, s_on = run(sql, "on", data)
        rows_off, calls_off, s_off = run(sql, "off", data)
        if "LIMIT" in sql:  # any 5 qualifying rows are a right answer
            same = len(rows_on) == len(rows_off) == 5
        else:
            same = sorted(rows_on, key=repr) == sorted(rows_off, key=repr)
        for key, calls, seconds in (("on", calls_on, s_on), ("off", calls_off, s_off)):
            totals[key][0] += calls
            totals[key][1] += seconds
        ratio = calls_off / max(calls_on, 1)
        print(f"{name:38} {calls_on:9d} {calls_off:9d} {ratio:6.1f}x {s_on:7.2f} {s_off:7.2f}"
              f"  {'same' if same else 'DIFFERENT'}")
    (c_on, t_on), (c_off, t_off) = totals["on"], totals["off"]
    print(f"{'total':38} {c_on:9d} {c_off:9d} {c_off / c_on:6.1f}x {t_on:7.2f} {t_off:7.2f}")
    proxy(data)


def proxy(data: list[tuple[int, str, str]]) -> None:
    """The embedding proxy against the full classifier, embeddings already cached."""
    print("\nproxy: WHERE classify(body, topics) = t WITH (proxy = 'embedding', recall = 0.9)")
    for topic in ("food", "love", "computers"):
        con = quarrydb.connect()
        cur = con.cursor()
        cur.execute("CREATE TABLE quotes (id INTEGER, body VARCHAR, topic VARCHAR)")
        cur.executemany("INSERT INTO quotes VALUES (?, ?, ?)", data)
        cur.execute("SELECT count(embed(body)) FROM quotes")
        sql = f"SELECT id FROM quotes WHERE classify(body, [{LABELS}]) = '{topic}'"
        cur.execute(sql + " WITH (proxy = 'embedding', recall = 0.9)")
        found = {r[0] for r in cur.fetchall()}
        figures = cur.stats["stages"][0]["proxy"]
        cur.execute(sql)
        truth = {r[0] for r in cur.fetchall()}
        recall = len(found & truth) / max(len(truth), 1)
        precision = len(found & truth) / max(len(found), 1)
        print(f"  = '{topic}':{'':10} classifier calls {figures['sent_to_model']:4d} of"
              f" {len(data)} (accepted {figures['accepted']}, rejected {figures['rejected']}),"
              f" recall {recall:.3f}, precision {precision:.3f} against the full classifier")
        con.close()


if __name__ == "__main__":
    main()
