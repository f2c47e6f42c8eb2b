"""`make demo`: a short tour of quarrydb's SQL on real text (Debian's fortunes), images
(scikit-image's samples) and speech (LibriVox, espeak-ng), printed as tables."""

from __future__ import annotations

import csv
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import quarrydb  # noqa: E402
from quarrydb.connectors.sample_media import write_sample_media  # noqa: E402
from quarrydb.connectors.table_format import format_table  # noqa: E402

FORTUNES = Path("/usr/share/games/fortunes")
TOPICS = ["computers", "food", "science", "sports", "love"]


def write_quotes_csv(folder: Path, per_topic: int = 12) -> Path:
    """A CSV of real quotes with their fortunes topic, like a user's own notes file."""
    rows = []
    for topic in TOPICS:
        path = FORTUNES / topic
        if not path.exists():
            sys.exit(f"{path} is missing: install the Debian package 'fortunes'")
        quotes = [" ".join(q.split()) for q in path.read_text(errors="replace").split("\n%\n")]
        quotes = [q for q in quotes if 30 < len(q) < 160]
        random.Random(7).shuffle(quotes)
        rows += [(topic, q) for q in quotes[:per_topic]]
    target = folder / "quotes.csv"
    with target.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "topic", "body"])
        writer.writerows((i + 1, t, q) for i, (t, q) in enumerate(rows))
    return target


def show(cur: quarrydb.Cursor, title: str, sql: str) -> None:
    print(f"\n-- {title}\n{sql.strip()}")
    started = time.perf_counter()
    cur.execute(sql)
    table = cur.fetch_arrow_table()
    elapsed = time.perf_counter() - started
    print(format_table(table))
    for warning in cur.warnings:
        print(f"warning: {warning}")
    stats = cur.stats
    if stats:
        print(f"({elapsed:.2f} s; values sent to models: {stats['model_inputs']},"
              f" served from the cache: {stats['cache_hits']})")


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="quarrydb-demo-"))
    source = write_quotes_csv(folder)
    database = folder / "demo.quarry"
    print(f"quarrydb {quarrydb.__version__} demo: database {database}")
    with quarrydb.connect(database) as con:
        cur = con.cursor()
        cur.execute(f"CREATE TABLE quotes AS SELECT * FROM read_csv('{source}')")
        show(cur, "the models on this machine", "SHOW MODELS")
        topics = ", ".join(f"'{t}'" for t in TOPICS)
        show(cur, "zero-shot topics: how often classify() agrees with the fortunes file",
             f"""SELECT topic, count(*) AS quotes,
       round(avg((classify(body, [{topics}]) = topic)::INT), 2) AS agreement
FROM quotes GROUP BY topic ORDER BY topic""")
        show(cur, "semantic search: the quotes closest to a question",
             """SELECT id, topic, body,
       round(similarity(embed(body), embed('what should I eat for dinner?')), 3) AS score
FROM quotes ORDER BY score DESC LIMIT 5""")
        show(cur, "a model predicate after a cheap one: only 'science' rows reach the model",
             """SELECT id, body FROM quotes
WHERE topic = 'science' AND classify(body, ['humour', 'serious']) = 'humour' LIMIT 5""")
        show(cur, "EXPLAIN: the model stages, then DuckDB's plan",
             f"""EXPLAIN SELECT id FROM quotes
WHERE topic <> 'love' AND classify(body, [{topics}]) = 'food'""")
        show(cur, "the same question again: everything comes from the result cache",
             f"""SELECT classify(body, [{topics}]) AS predicted, count(*) AS n
FROM quotes GROUP BY ALL ORDER BY n DESC""")
        media_tour(cur, folder / "media")
    print(f"\nThe database stays in {database}: open it with  quarrydb {database}")


def media_tour(cur: quarrydb.Cursor, folder: Path) -> None:
    """Images and recordings made from package data, asked about in SQL."""
    media = write_sample_media(folder)
    root = media.root
    show(cur, "a folder of media is a table", f"""SELECT kind, count(*) AS files, sum(size) AS bytes
FROM read_media('{root}/**/*') GROUP BY kind ORDER BY kind""")
    show(cur, "classify and caption images (the caption model here is the offline stand-in)",
         f"""SELECT regexp_extract(path, '[^/]+$') AS file,
       classify(path, ['cat', 'coffee', 'rocket', 'person', 'motorcycle']) AS label,
       caption(path) AS caption
FROM read_media('{root}/images/*') ORDER BY file""")
    show(cur, "text-to-image search", f"""SELECT regexp_extract(p.path, '[^/]+$') AS file
FROM read_media('{root}/images/*') p
ORDER BY similarity(embed(p.path), embed('a hot drink')) DESC LIMIT 3""")
    show(cur, "transcribe recordings (Whisper tiny.en, packaged)",
         f"""SELECT regexp_extract(path, '[^/]+$') AS file, transcribe(path) AS words
FROM read_media('{root}/audio/*') WHERE kind = 'audio' AND size < 5000000 ORDER BY file""")
    show(cur, "bad media gives NULL and a warning, and the query goes on",
         f"""SELECT regexp_extract(path, '[^/]+$') AS file, caption(image(path)) AS caption
FROM read_media('{root}/bad/*') WHERE kind = 'image' ORDER BY file""")


if __name__ == "__main__":
    main()
