"""The sample media folder is real, small and deterministic; its broken files break as promised."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest
import soundfile as sf
from PIL import Image

from quarrydb.connectors.sample_media import SampleMedia, main, write_sample_media

EXPECTED_IMAGES = {
    "cat.jpg": ("cat", "JPEG", "RGB"),
    "coffee.png": ("coffee", "PNG", "RGB"),
    "rocket.webp": ("rocket", "WEBP", "RGB"),
    "astronaut.jpg": ("astronaut", "JPEG", "RGB"),
    "motorcycle.bmp": ("motorcycle", "BMP", "RGB"),
    "horse.gif": ("horse", "GIF", ("L", "P")),
    "camera.tiff": ("camera", "TIFF", "L"),
}


def _write(folder: Path) -> SampleMedia:
    try:
        return write_sample_media(folder)
    except RuntimeError as exc:  # a Debian package is missing (.ci/system-packages installs them)
        pytest.fail(str(exc))


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> SampleMedia:
    return _write(tmp_path_factory.mktemp("sample_media"))


def test_deterministic_and_idempotent(media, tmp_path):
    first = _hashes(media.root)
    other = _write(tmp_path / "again")
    assert _hashes(other.root) == first  # a fresh folder gets the same bytes
    again = _write(media.root)
    assert _hashes(again.root) == first  # rewriting in place changes nothing
    assert again.images.keys() == media.images.keys()
    assert again.speech == media.speech


def test_described_files_exist_under_root(media):
    paths = media.all_paths()
    assert len(paths) == 7 + 9 + 1 + 2 + 7
    for path in paths:
        assert Path(path).is_file(), path
        assert Path(path).is_relative_to(media.root)
    assert set(media.non_speech).isdisjoint(media.speech)


def test_images_open_with_expected_mode_and_size(media):
    by_name = {Path(p).name: label for p, label in media.images.items()}
    assert by_name == {name: label for name, (label, _, _) in EXPECTED_IMAGES.items()}
    for path in media.images:
        label, fmt, modes = EXPECTED_IMAGES[Path(path).name]
        with Image.open(path) as image:
            image.load()
            assert image.format == fmt, path
            assert image.mode in (modes if isinstance(modes, tuple) else (modes,)), path
            assert max(image.size) <= 512 and min(image.size) >= 100, (path, image.size)
        assert Path(path).stat().st_size <= 150 * 1024, path


def test_speech_reads_and_transcripts_match(media):
    audio_dir = media.root / "audio"
    listed = json.loads((audio_dir / "transcripts.json").read_text())
    assert {str(audio_dir / name): text for name, text in listed.items()} == media.speech
    for path, text in media.speech.items():
        info = sf.info(path)
        assert 0.5 < info.duration < 30, (path, info.duration)
        assert info.channels == 1
        assert text and text == text.strip()
    names = {Path(p).name: t for p, t in media.speech.items()}
    assert names["go_forward.wav"] == "go forward ten meters"
    assert names["sense_and_sensibility_01_austen_64kb-0880.wav"] == (
        "he was not an ill disposed young man"
    )
    assert names["espeak_weather.flac"] == "The weather today is sunny and warm"
    assert sf.info(str(audio_dir / "espeak_weather.flac")).format == "FLAC"
    assert sf.info(str(audio_dir / "espeak_meeting.ogg")).format == "OGG"
    assert sf.info(str(audio_dir / "go_forward.wav")).samplerate == 16000
    for path in media.non_speech:
        assert sf.info(path).duration > 0


def test_texts(media):
    assert sorted(Path(p).name for p in media.texts) == ["crash.txt", "refund.txt"]
    for path, content in media.texts.items():
        assert Path(path).read_text(encoding="utf-8") == content
        assert len(content.split()) >= 5


def test_bad_files_are_broken_as_described(media):
    bad = {Path(p).name: Path(p) for p in media.bad}
    assert set(bad) == {
        "empty.jpg",
        "truncated.jpg",
        "garbage.png",
        "huge.png",
        "not_audio.wav",
        "long.wav",
        "notes.xyz",
    }
    assert bad["empty.jpg"].stat().st_size == 0
    cat = (media.root / "images" / "cat.jpg").read_bytes()
    assert bad["truncated.jpg"].read_bytes() == cat[: int(len(cat) * 0.4)]
    with pytest.raises(OSError), Image.open(bad["truncated.jpg"]) as image:
        image.load()
    with pytest.raises(OSError):
        Image.open(bad["garbage.png"])
    assert len(bad["garbage.png"].read_bytes()) == 256
    with pytest.raises(RuntimeError):
        sf.info(str(bad["not_audio.wav"]))
    assert bad["notes.xyz"].stat().st_size > 0


def test_huge_png_is_a_tiny_decompression_bomb(media):
    path = media.root / "bad" / "huge.png"
    raw = path.read_bytes()
    assert len(raw) < 1024
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
    assert struct.unpack(">II", raw[16:24]) == (20000, 20000)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)


def test_long_wav_header_claims_hours(media):
    path = media.root / "bad" / "long.wav"
    raw = path.read_bytes()
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WAVE" and raw[36:40] == b"data"
    channels, rate = struct.unpack("<HI", raw[22:28])
    bits = struct.unpack("<H", raw[34:36])[0]
    claimed = struct.unpack("<I", raw[40:44])[0]
    assert (channels, rate, bits) == (1, 16000, 16)
    assert claimed / (rate * 2) >= 3 * 3600
    assert len(raw) - 44 == rate * 2  # one real second
    assert path.stat().st_size < 100 * 1024


def test_all_files_small(media):
    for path in media.all_paths():
        # The LibriVox clips are copied as shipped (the longest is ~222 KB); the rest are tiny.
        assert Path(path).stat().st_size <= 250 * 1024, path


def test_main_prints_summary(tmp_path, capsys):
    assert main([str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    assert "images/cat.jpg" in out and "bad/huge.png" in out
    assert main([]) == 2
