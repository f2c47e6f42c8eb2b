"""A small, real, deterministic media folder built from package data, for tests and the demo.

Why: quarrydb runs SQL over folders of images, audio and text. Tests and demos need such a folder
with known answers (what each image shows, what each clip says) and with broken files for the
error paths, without a network and without checking binaries into the repository. Everything here
comes from installed packages (scikit-image, Debian's pocketsphinx-testdata, espeak-ng, sox,
sound-theme-freedesktop) and is written byte-identically on every run.

    python -m quarrydb.connectors.sample_media DIR
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

POCKETSPHINX_DATA = Path("/usr/share/pocketsphinx/test/data")
LIBRIVOX = POCKETSPHINX_DATA / "librivox"
GOFORWARD_RAW = POCKETSPHINX_DATA / "goforward.raw"
GOFORWARD_TEXT = "go forward ten meters"
FREEDESKTOP_STEREO = Path("/usr/share/sounds/freedesktop/stereo")

# JPEG, WebP and the two-tone GIF stay small at 512 px; PNG, BMP and TIFF of photos would be several
# hundred KB at 512 px, so they are downscaled further to keep every file <= ~150 KB.
COMPACT_MAX_SIDE = 512
LOSSLESS_MAX_SIDE = 256
JPEG_QUALITY = 85
WEBP_QUALITY = 80

ESPEAK_SENTENCES = {
    "weather": "The weather today is sunny and warm",
    "meeting": "Please send the meeting notes to the whole team",
}
DOCS = {
    "refund.txt": "Please refund my last invoice, I was charged twice.",
    "crash.txt": "The app crashes every time I open the settings page.",
}

HUGE_SIDE = 20000
LONG_WAV_RATE = 16000
LONG_WAV_CLAIMED_SECONDS = 3 * 3600


@dataclass
class SampleMedia:
    """What `write_sample_media` wrote, with the known answer for every file (absolute paths)."""

    root: Path
    images: dict[str, str] = field(default_factory=dict)  # path -> what it shows
    speech: dict[str, str] = field(default_factory=dict)  # path -> known transcript
    non_speech: list[str] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)  # path -> content
    bad: dict[str, str] = field(default_factory=dict)  # path -> what is wrong with it

    def root_path(self, relative: str) -> str:
        """The absolute path of a file in the folder, as the other fields give it."""
        return str(self.root / relative)

    def all_paths(self) -> list[str]:
        """Every file written, sorted; handy for hashing and listing."""
        paths = [*self.images, *self.speech, *self.non_speech, *self.texts, *self.bad]
        return sorted(set(paths))


def _require_tool(binary: str, package: str) -> str:
    """Fail early with the Debian package to install, not with a FileNotFoundError mid-way."""
    path = shutil.which(binary)
    if path is None:
        raise RuntimeError(f"{binary} not found: install the Debian package '{package}'")
    return path


def _require_file(path: Path, package: str) -> None:
    if not path.exists():
        raise RuntimeError(f"{path} is missing: install the Debian package '{package}'")


def _check_requirements() -> tuple[str, str]:
    """All external inputs, checked before anything is written."""
    espeak = _require_tool("espeak-ng", "espeak-ng")
    sox = _require_tool("sox", "sox")
    _require_file(LIBRIVOX / "transcription", "pocketsphinx-testdata")
    _require_file(GOFORWARD_RAW, "pocketsphinx-testdata")
    _require_file(FREEDESKTOP_STEREO / "bell.oga", "sound-theme-freedesktop")
    return espeak, sox


# ---------------------------------------------------------------------------------------------
# images


def _image_sources() -> list[tuple[str, str, Callable[[], np.ndarray]]]:
    """(file name, what it shows, loader) for the bundled scikit-image pictures."""
    from skimage import data

    def motorcycle() -> np.ndarray:
        # Only the stereo pair ships with scikit-image; the left view is an ordinary photo.
        return data.stereo_motorcycle()[0]

    return [
        ("cat.jpg", "cat", data.chelsea),
        ("coffee.png", "coffee", data.coffee),
        ("rocket.webp", "rocket", data.rocket),
        ("astronaut.jpg", "astronaut", data.astronaut),
        ("motorcycle.bmp", "motorcycle", motorcycle),
        ("horse.gif", "horse", data.horse),
        ("camera.tiff", "camera", data.camera),
    ]


def _save_image(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    if array.dtype == bool:  # horse is a binary mask; GIF wants 8-bit grey
        array = array.astype(np.uint8) * 255
    image = Image.fromarray(np.ascontiguousarray(array))
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    suffix = path.suffix.lower()
    compact = suffix in (".jpg", ".jpeg", ".webp", ".gif")
    side = COMPACT_MAX_SIDE if compact else LOSSLESS_MAX_SIDE
    image.thumbnail((side, side), Image.LANCZOS)
    if suffix in (".jpg", ".jpeg"):
        image.save(path, "JPEG", quality=JPEG_QUALITY)
    elif suffix == ".webp":
        image.save(path, "WEBP", quality=WEBP_QUALITY, method=4)
    elif suffix == ".png":
        image.save(path, "PNG", optimize=True)
    elif suffix == ".gif":
        image.save(path, "GIF")
    elif suffix == ".bmp":
        image.save(path, "BMP")
    elif suffix in (".tif", ".tiff"):
        image.save(path, "TIFF")
    else:  # pragma: no cover - only our own names reach here
        raise ValueError(f"unknown image format {suffix}")


def _write_images(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    images: dict[str, str] = {}
    for name, label, load in _image_sources():
        path = folder / name
        _save_image(load(), path)
        images[str(path)] = label
    return images


# ---------------------------------------------------------------------------------------------
# audio


def _librivox_transcripts() -> dict[str, str]:
    """Parse lines like '<s> he was not an ill disposed young man </s> (file-id)'."""
    transcripts: dict[str, str] = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        match = re.match(r"^(.*)\(([^()]+)\)\s*$", line.strip())
        if not match:
            continue
        text = re.sub(r"</?s>", " ", match.group(1))
        transcripts[match.group(2).strip() + ".wav"] = " ".join(text.split())
    return transcripts


def _run(args: list[str]) -> None:
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()}")


def _write_audio(folder: Path, espeak: str, sox: str) -> tuple[dict[str, str], list[str]]:
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    speech: dict[str, str] = {}
    transcripts: dict[str, str] = {}

    for name, text in sorted(_librivox_transcripts().items()):
        source = LIBRIVOX / name
        if not source.exists():
            continue
        shutil.copyfile(source, folder / name)
        transcripts[name] = text

    samples = np.fromfile(GOFORWARD_RAW, dtype="<i2")
    sf.write(folder / "go_forward.wav", samples, 16000, subtype="PCM_16", format="WAV")
    transcripts["go_forward.wav"] = GOFORWARD_TEXT

    weather_wav = folder / "espeak_weather.wav"
    _run([espeak, "-w", str(weather_wav), ESPEAK_SENTENCES["weather"]])
    # -R: sox's "repeatable" mode, so encoders that draw random numbers (Ogg serials) don't.
    _run([sox, "-R", str(weather_wav), str(folder / "espeak_weather.flac")])
    transcripts["espeak_weather.wav"] = ESPEAK_SENTENCES["weather"]
    transcripts["espeak_weather.flac"] = ESPEAK_SENTENCES["weather"]

    with tempfile.TemporaryDirectory() as tmp:
        meeting_wav = Path(tmp) / "meeting.wav"
        _run([espeak, "-w", str(meeting_wav), ESPEAK_SENTENCES["meeting"]])
        _run([sox, "-R", str(meeting_wav), str(folder / "espeak_meeting.ogg")])
    transcripts["espeak_meeting.ogg"] = ESPEAK_SENTENCES["meeting"]

    shutil.copyfile(FREEDESKTOP_STEREO / "bell.oga", folder / "bell.oga")
    non_speech = [str(folder / "bell.oga")]

    (folder / "transcripts.json").write_text(
        json.dumps(dict(sorted(transcripts.items())), indent=2) + "\n", encoding="utf-8"
    )
    for name, text in sorted(transcripts.items()):
        speech[str(folder / name)] = text
    return speech, non_speech


# ---------------------------------------------------------------------------------------------
# documents and broken files


def _write_docs(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    texts: dict[str, str] = {}
    for name, content in DOCS.items():
        path = folder / name
        path.write_bytes(content.encode("utf-8"))
        texts[str(path)] = content
    return texts


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def huge_png_bytes(side: int = HUGE_SIDE) -> bytes:
    """A tiny valid-looking PNG whose header declares side x side 8-bit grey pixels.

    Why: a decoder that trusts the header would allocate side**2 bytes (400 MB at 20000); the
    engine must refuse it from the header alone.
    """
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale, no interlace
    idat = zlib.compress(b"\x00", 9)  # one filter byte: far too little data, but well-formed zlib
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def long_wav_bytes(
    claimed_seconds: int = LONG_WAV_CLAIMED_SECONDS,
    rate: int = LONG_WAV_RATE,
    real_seconds: int = 1,
) -> bytes:
    """A 16-bit mono WAV whose header claims `claimed_seconds` but carries `real_seconds`.

    Why: duration limits must be checked from the header, before decoding hours of audio.
    """
    claimed_bytes = claimed_seconds * rate * 2
    t = np.arange(real_seconds * rate) / rate
    tone = (0.2 * 32767 * np.sin(2 * np.pi * 440.0 * t)).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)  # PCM, mono, 16-bit
    return (
        b"RIFF"
        + struct.pack("<I", 4 + (8 + len(fmt)) + 8 + claimed_bytes)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", claimed_bytes)
        + tone
    )


def _write_bad(folder: Path, cat_jpg: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    cat = cat_jpg.read_bytes()
    files: dict[str, tuple[bytes, str]] = {
        "empty.jpg": (b"", "empty file (0 bytes)"),
        "truncated.jpg": (cat[: int(len(cat) * 0.4)], "JPEG cut off after 40% of its bytes"),
        "garbage.png": (
            np.random.default_rng(0).bytes(256),
            "256 random bytes with a .png name",
        ),
        "huge.png": (
            huge_png_bytes(),
            f"PNG header declares {HUGE_SIDE}x{HUGE_SIDE} pixels (decompression bomb)",
        ),
        "not_audio.wav": (b"hello", "text bytes with a .wav name"),
        "long.wav": (
            long_wav_bytes(),
            f"WAV header claims {LONG_WAV_CLAIMED_SECONDS // 3600} h but holds 1 s of samples",
        ),
        "notes.xyz": (b"QRYX\x00\x01 not a format anyone reads\n", "unsupported file type"),
    }
    bad: dict[str, str] = {}
    for name, (payload, why) in files.items():
        path = folder / name
        path.write_bytes(payload)
        bad[str(path)] = why
    return bad


# ---------------------------------------------------------------------------------------------
# entry points


def write_sample_media(folder: Path) -> SampleMedia:
    """Write images/, audio/, docs/ and bad/ under `folder`; re-running rewrites identical bytes."""
    espeak, sox = _check_requirements()
    root = Path(folder).resolve()
    root.mkdir(parents=True, exist_ok=True)
    media = SampleMedia(root=root)
    media.images = _write_images(root / "images")
    media.speech, media.non_speech = _write_audio(root / "audio", espeak, sox)
    media.texts = _write_docs(root / "docs")
    media.bad = _write_bad(root / "bad", root / "images" / "cat.jpg")
    return media


def _summary(media: SampleMedia) -> str:
    def size(path: str) -> str:
        return f"{Path(path).stat().st_size / 1024:7.1f} KB"

    def rel(path: str) -> str:
        return str(Path(path).relative_to(media.root))

    lines = [f"sample media in {media.root}"]
    sections: list[tuple[str, dict[str, str]]] = [
        ("images", media.images),
        ("speech", media.speech),
        ("non-speech", {p: "" for p in media.non_speech}),
        ("texts", media.texts),
        ("bad", media.bad),
    ]
    for title, entries in sections:
        lines.append(f"{title} ({len(entries)}):")
        for path, about in entries.items():
            lines.append(f"  {rel(path):52} {size(path)}  {about}".rstrip())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m quarrydb.connectors.sample_media DIR", file=sys.stderr)
        return 2
    try:
        media = write_sample_media(Path(args[0]))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(_summary(media))
    return 0


if __name__ == "__main__":
    sys.exit(main())
