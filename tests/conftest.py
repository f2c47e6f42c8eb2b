"""Shared fixtures: real connections, real text (Debian fortunes), models loaded once per run."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import quarrydb  # noqa: E402

FORTUNES = Path("/usr/share/games/fortunes")
TOPICS = ["computers", "food", "science", "sports", "medicine", "love", "politics", "education"]


@pytest.fixture(scope="session", autouse=True)
def no_local_models(tmp_path_factory):
    """QUARRYDB_MODEL_DIR is an empty folder for the whole run, and for the processes tests
    start (they inherit the environment): weights in ~/.cache/quarrydb/models (a real CLIP, a
    captioner) would change the default models the tests expect. A test that wants its own
    folder sets it (monkeypatch.setenv) and builds its registry (build_registry())."""
    from quarrydb.udfs import default_registry

    before = os.environ.get("QUARRYDB_MODEL_DIR")
    os.environ["QUARRYDB_MODEL_DIR"] = str(tmp_path_factory.mktemp("no-models"))
    default_registry.cache_clear()  # one built before this (at collection) saw the old folder
    yield
    if before is None:
        del os.environ["QUARRYDB_MODEL_DIR"]
    else:
        os.environ["QUARRYDB_MODEL_DIR"] = before
    default_registry.cache_clear()


@pytest.fixture
def con():
    with quarrydb.connect() as connection:
        yield connection


@pytest.fixture
def cur(con):
    return con.cursor()


def fortune_quotes(topic: str, count: int, seed: int = 0) -> list[str]:
    """Quotes of one topic from Debian's fortunes package (installed by .ci/run)."""
    path = FORTUNES / topic
    if not path.exists():
        pytest.fail(f"{path} is missing: install the Debian package 'fortunes' (see .ci/run)")
    raw = path.read_text(encoding="utf-8", errors="replace").split("\n%\n")
    quotes = [q.strip() for q in raw if 20 < len(q.strip()) < 400]
    random.Random(seed).shuffle(quotes)
    return quotes[:count]


@pytest.fixture(scope="session")
def labelled_quotes() -> list[tuple[str, str]]:
    return [(q, t) for t in TOPICS for q in fortune_quotes(t, 25)]


NOTES = [
    (1, "I was charged twice for my subscription this month", "2026-03-01", "billing"),
    (2, "The app crashes every time I open it on my phone", "2026-04-01", "support"),
    (3, "Refund please, the invoice amount is wrong", "2025-05-01", "billing"),
    (4, "After the update the app freezes on the start screen", "2026-06-01", "support"),
    (5, None, "2026-06-02", "support"),
    (6, "Why was my credit card billed for a plan I cancelled?", "2026-07-01", "billing"),
    (7, "The export button throws an error and nothing downloads", "2026-08-01", "support"),
    (8, "I was charged twice for my subscription this month", "2026-09-01", "billing"),
]


@pytest.fixture
def notes(cur):
    """A small notes table with a duplicate body and a NULL body."""
    cur.execute("CREATE TABLE notes (id INTEGER, body VARCHAR, created DATE, team VARCHAR)")
    cur.executemany("INSERT INTO notes VALUES (?, ?, CAST(? AS DATE), ?)", NOTES)
    return cur
