"""Images and audio in SQL: read_media, the model functions on media, and bad media."""

from __future__ import annotations

import shutil

import pytest

import quarrydb
from quarrydb.connectors.sample_media import write_sample_media
from tests.word_error_rate import wer


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return write_sample_media(tmp_path_factory.mktemp("media"))


def test_read_media_lists_files_with_kind_size_and_time(cur, media):
    cur.execute(f"SELECT path, kind, size, modified FROM read_media('{media.root}/**/*')"
                " ORDER BY path")
    rows = {r[0]: r for r in cur.fetchall()}
    assert rows[media.root_path("images/cat.jpg")][1] == "image"
    assert rows[media.root_path("audio/go_forward.wav")][1] == "audio"
    assert rows[media.root_path("docs/refund.txt")][1] == "text"
    assert rows[media.root_path("bad/notes.xyz")][1] == "other"
    assert all(r[2] >= 0 and r[3] is not None for r in rows.values())


def test_classify_and_caption_images(cur, media):
    cur.execute(
        f"SELECT path, classify(path, ['cat', 'coffee', 'rocket']) AS label, caption(path)"
        f" FROM read_media('{media.root}/images/*') ORDER BY path"
    )
    found = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
    for name, label in [("cat.jpg", "cat"), ("coffee.png", "coffee"), ("rocket.webp", "rocket")]:
        assert found[media.root_path(f"images/{name}")][0] == label
    assert "cat" in found[media.root_path("images/cat.jpg")][1].lower()
    assert cur.warnings == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [("a hot drink", "coffee.png"), ("a cat", "cat.jpg"), ("a rocket launch", "rocket.webp"),
     ("a motorbike", "motorcycle.bmp")],
)
def test_text_to_image_search(cur, media, query, expected):
    cur.execute(
        f"SELECT p.path FROM read_media('{media.root}/images/*') p"
        f" ORDER BY similarity(embed(p.path), embed('{query}')) DESC LIMIT 1"
    )
    assert cur.fetchone()[0].endswith(expected)


def test_transcribe_speech_within_a_loose_word_error_rate(cur, media):
    cur.execute(
        f"SELECT path, transcribe(path) FROM read_media('{media.root}/audio/*')"
        " WHERE kind = 'audio' AND size < 5000000"
    )
    got = dict(cur.fetchall())
    librivox = [p for p in media.speech if "austen" in p]
    assert wer([media.speech[p] for p in librivox], [got[p] for p in librivox]) < 0.15
    go = media.root_path("audio/go_forward.wav")
    assert wer(["go forward ten meters"], [got[go]]) < 0.3
    meeting = media.root_path("audio/espeak_meeting.ogg")
    assert wer([media.speech[meeting]], [got[meeting]]) < 0.5


def test_audio_embedding_is_the_transcripts_meaning(cur, media):
    go = media.root_path("audio/go_forward.wav")
    cur.execute(
        f"SELECT similarity(embed(audio('{go}')), embed('move ahead ten metres')),"
        f" similarity(embed(audio('{go}')), embed('a recipe for apple pie')),"
        f" embed(audio('{media.root_path('audio/bell.oga')}'))"
    )
    close, far, bell = cur.fetchone()
    assert close > far + 0.2
    assert bell is None
    assert any("no speech" in w for w in cur.warnings)


def test_a_mixed_folder_picks_the_model_by_kind(cur, media):
    cur.execute(
        f"SELECT path, kind, classify(path, ['billing', 'software bug', 'animal'])"
        f" FROM read_media('{media.root}/**/*')"
        f" WHERE kind IN ('image', 'text') AND NOT starts_with(path, '{media.root}/bad/')"
        " ORDER BY path"
    )
    rows = {r[0]: r for r in cur.fetchall()}
    assert rows[media.root_path("docs/refund.txt")][2] == "billing"
    assert rows[media.root_path("docs/crash.txt")][2] == "software bug"
    assert rows[media.root_path("images/cat.jpg")][2] == "animal"
    stages = cur.stats["stages"]
    assert stages[0]["model_inputs"] == len(rows)
    # Each kind's model is named, in the figures and in EXPLAIN (the text one alone was).
    assert "image: imagenet-minilm-bridge" in stages[0]["model"]
    cur.execute(f"EXPLAIN SELECT classify(path, ['cat', 'dog']) FROM read_media('{media.root}/*')")
    assert "models by kind: text: minilm, image: imagenet-minilm-bridge" in cur.fetchall()[0][1]


def test_null_into_a_media_only_function_is_null(cur, media):
    """caption() reads images only: a NULL (untyped, or cast) is still NULL in, NULL out."""
    cur.execute("SELECT caption(NULL), caption(NULL::BLOB)")
    assert cur.fetchall() == [(None, None)]
    with pytest.raises(quarrydb.ProgrammingError, match="for caption\\(\\) on image"):
        cur.execute(f"SELECT caption(path, 'minilm') FROM read_media('{media.root}/images/*')")


def test_media_as_blobs_and_uris(cur, media):
    cur.execute(f"CREATE TABLE scans AS SELECT filename, content AS photo_blob"
                f" FROM read_blob('{media.root}/images/c*')")
    cur.execute("SELECT filename, classify(image(photo_blob), ['cat', 'coffee', 'camera'])"
                " FROM scans ORDER BY filename")
    assert [r[1] for r in cur.fetchall()] == ["camera", "cat", "coffee"]
    uri = "file://" + media.root_path("images/coffee.png")
    cur.execute(f"SELECT classify(image('{uri}'), ['cat', 'coffee'])")
    assert cur.fetchone() == ("coffee",)


def test_a_plain_varchar_is_text_never_a_file(cur, media):
    """The string is embedded by the text model, never opened as the image it names.

    (Which label a path string wins depends on the temporary folder's name, so the
    test compares embeddings, not a label.)
    """
    path = media.root_path("images/cat.jpg")
    cur.execute(f"SELECT embed('{path}') = embed('{path}', 'minilm')")
    assert cur.fetchone() == (True,)
    cur.execute(f"SELECT embed(path) = embed('{path}') FROM read_media('{path}')")
    assert cur.fetchone() == (False,)
    cur.execute("CREATE TABLE t (photo BLOB)")
    with pytest.raises(quarrydb.ProgrammingError, match="image"):
        cur.execute("SELECT embed(photo) FROM t")


@pytest.mark.parametrize("source", [
    "WITH x(p) AS (SELECT path FROM read_media('{g}')) SELECT p, classify(p, {L}) FROM x",
    "SELECT p, classify(p, {L}) FROM (SELECT path FROM read_media('{g}')) x(p)",
    "SELECT p, classify(p, {L}) FROM read_media('{g}') AS r(p)",
    "WITH x(k, p) AS (SELECT kind, path FROM read_media('{g}')) SELECT p, classify(p, {L})"
    " FROM x",
    "WITH x AS (SELECT * RENAME (path AS p) FROM read_media('{g}')) SELECT p, classify(p, {L})"
    " FROM x",
    "WITH x(p) AS (SELECT path FROM read_media('{g}')) SELECT q, classify(q, {L}) FROM x y(q)",
    "SELECT p, classify(p, {L}) FROM photos AS ph(p)",  # a declared column, renamed
])
def test_a_media_column_renamed_by_an_alias_list_stays_media(cur, media, source):
    """Before, the renamed column was read as text: the file's name was classified."""
    labels = "['cat', 'coffee', 'rocket', 'horse', 'motorcycle']"
    cur.execute(f"CREATE TABLE photos AS SELECT path FROM read_media('{media.root}/images/*')")
    cur.execute("COMMENT ON COLUMN photos.path IS 'media:image'")
    expected = sorted(cur.execute(f"SELECT path, classify(path, {labels})"
                                  f" FROM read_media('{media.root}/images/*')").fetchall())
    query = source.format(g=f"{media.root}/images/*", L=labels)
    assert sorted(cur.execute(query).fetchall()) == expected


def test_a_union_column_is_media_when_any_branch_is(cur, media):
    """The first branch a literal, the second read_media's path: every row is a file (the
    literal a missing one), not text."""
    labels = "['cat', 'coffee', 'rocket']"
    cur.execute(f"SELECT path, classify(path, {labels}) FROM (SELECT '/no/such.jpg' AS path"
                f" UNION ALL SELECT path FROM read_media('{media.root}/images/*'))")
    found = dict(cur.fetchall())
    assert found["/no/such.jpg"] is None
    assert cur.warnings == ["classify(): /no/such.jpg: missing file"]
    assert [found[media.root_path(f"images/{name}.jpg")] for name in ("cat", "astronaut")] == [
        "cat", "rocket"]


def test_a_declared_media_column_keeps_its_kind_across_reopen(tmp_path, media):
    database = tmp_path / "photos.quarry"
    with quarrydb.connect(database) as con:
        cur = con.cursor()
        cur.execute(f"CREATE TABLE photos AS SELECT path FROM read_media('{media.root}/images/*')")
        cur.execute("COMMENT ON COLUMN photos.path IS 'media:image'")
    with quarrydb.connect(database) as con:
        cur = con.cursor()
        cur.execute("SELECT path FROM photos WHERE classify(path, ['cat', 'coffee', 'rocket'])"
                    " = 'cat'")
        found = [r[0] for r in cur.fetchall()]
        assert media.root_path("images/cat.jpg") in found
        assert not any(p.endswith(("coffee.png", "rocket.webp")) for p in found)


def test_bad_media_gives_null_and_a_warning_and_is_not_cached(cur, media, tmp_path):
    cur.execute(f"SELECT path, embed(path) FROM read_media('{media.root}/bad/*') ORDER BY path")
    rows = cur.fetchall()
    assert [r[1] for r in rows] == [None] * len(media.bad)
    warned = " ".join(cur.warnings)
    for path in media.bad:
        assert path in warned
    for reason in ["empty", "corrupt", "too large", "3:00:00", "unrecognised", "decode audio"]:
        assert reason in warned
    cur.execute("SELECT count(*) FROM _quarry.result_cache")
    cached = cur.fetchone()[0]
    cur.execute(f"SELECT embed(path) FROM read_media('{media.root}/bad/*')")
    assert cur.stats["cache_hits"] == 0
    cur.execute("SELECT count(*) FROM _quarry.result_cache")
    assert cur.fetchone()[0] == cached
    missing = str(tmp_path / "gone.jpg")
    cur.execute(f"SELECT caption(image('{missing}'))")
    assert cur.fetchone() == (None,)
    assert cur.warnings == [f"caption(): {missing}: missing file"]


def test_on_media_error_raise_names_the_file(cur, media):
    cur.execute("SET on_media_error = 'raise'")
    truncated = media.root_path("bad/truncated.jpg")
    with pytest.raises(quarrydb.DataError, match="truncated.jpg"):
        cur.execute(f"SELECT caption(image('{truncated}'))")


def test_the_same_content_under_two_names_is_computed_once(cur, media, tmp_path):
    copy = tmp_path / "same_cat.jpg"
    shutil.copy(media.root_path("images/cat.jpg"), copy)
    cur.execute(
        f"SELECT caption(image(p)) FROM (VALUES ('{media.root_path('images/cat.jpg')}'),"
        f" ('{copy}')) t(p)"
    )
    first, second = cur.fetchall()
    assert first == second
    assert cur.stats["model_inputs"] == 1


def test_show_models_lists_media_models(cur):
    cur.execute("SHOW MODELS")
    rows = {r[0]: r for r in cur.fetchall()}
    assert rows["imagenet-minilm-bridge"][2] == "image"
    assert rows["whisper-tiny.en"][1] == "transcribe"
    assert "not CLIP" in rows["imagenet-minilm-bridge"][7]
