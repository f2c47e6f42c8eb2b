"""decode_image and sniff_kind: supported formats decode to upright RGB; bad media fail clearly."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from quarrydb.udfs.image_decode import MAX_IMAGE_PIXELS, decode_image, sniff_kind
from quarrydb.udfs.media_errors import MediaError


@pytest.fixture(scope="module")
def chelsea() -> Image.Image:
    return Image.fromarray(data.chelsea())  # 451 x 300 RGB, a cat


def write(tmp_path: Path, img: Image.Image, name: str, **save_args: object) -> bytes:
    """Save to a real file, as a user's data would be, and read the bytes back."""
    path = tmp_path / name
    img.save(path, **save_args)
    return path.read_bytes()


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())


@pytest.mark.parametrize(
    ("name", "kwargs", "tolerance"),
    [
        ("cat.png", {}, 0.0),
        ("cat.jpg", {"quality": 95}, 4.0),
        ("cat.webp", {"quality": 95}, 6.0),
        ("cat.bmp", {}, 0.0),
        ("cat.tiff", {}, 0.0),
        ("cat.gif", {}, 12.0),  # 256-colour palette
    ],
)
def test_formats_decode_to_rgb(tmp_path, chelsea, name, kwargs, tolerance):
    raw = write(tmp_path, chelsea, name, **kwargs)
    assert sniff_kind(raw) == "image"
    img = decode_image(raw)
    assert img.mode == "RGB"
    assert img.size == chelsea.size
    assert mean_abs_diff(img, chelsea) <= tolerance


def test_greyscale_palette_and_16_bit(tmp_path, chelsea):
    grey = chelsea.convert("L")
    for name in ("grey.png", "grey.jpg"):
        img = decode_image(write(tmp_path, grey, name))
        assert img.mode == "RGB" and img.size == chelsea.size
        assert mean_abs_diff(img, grey.convert("RGB")) < 3.0

    palette = chelsea.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    img = decode_image(write(tmp_path, palette, "palette.png"))
    assert img.mode == "RGB" and mean_abs_diff(img, palette.convert("RGB")) == 0.0

    # 16-bit greyscale must be scaled down, not clipped to white
    sixteen = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)
    for name in ("grey16.png", "grey16.tiff"):
        img = decode_image(write(tmp_path, sixteen, name))
        assert img.mode == "RGB"
        assert mean_abs_diff(img, grey.convert("RGB")) < 1.0


def test_alpha_is_composited_on_white(tmp_path, chelsea):
    rgba = chelsea.convert("RGBA")
    alpha = np.zeros((chelsea.height, chelsea.width), dtype=np.uint8)
    alpha[:, : chelsea.width // 2] = 255  # left half opaque, right half transparent
    rgba.putalpha(Image.fromarray(alpha))
    img = np.asarray(decode_image(write(tmp_path, rgba, "alpha.png")))
    half = chelsea.width // 2
    assert (img[:, half:] == 255).all()
    assert (img[:, :half] == np.asarray(chelsea)[:, :half]).all()

    # a palette GIF with a transparent colour
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.paste(0, (0, 0, 4, 8))
    img = np.asarray(decode_image(write(tmp_path, pal, "transparent.gif", transparency=0)))
    assert (img[:, :4] == 255).all() and (img[:, 4:] == [255, 0, 0]).all()


def test_gif_first_frame(tmp_path):
    red, blue = Image.new("RGB", (16, 16), "red"), Image.new("RGB", (16, 16), "blue")
    raw = write(tmp_path, red, "anim.gif", save_all=True, append_images=[blue], duration=100)
    assert np.asarray(decode_image(raw))[0, 0].tolist() == [255, 0, 0]


def test_exif_orientation_applied(tmp_path, chelsea):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    raw = write(tmp_path, chelsea, "rotated.jpg", exif=exif.tobytes(), quality=95)
    assert Image.open(io.BytesIO(raw)).size == (451, 300)  # stored sideways
    img = decode_image(raw)
    assert img.size == (300, 451)
    assert mean_abs_diff(img, chelsea.transpose(Image.Transpose.ROTATE_270)) < 4.0


def crafted_png(width: int, height: int) -> bytes:
    """A few-byte PNG whose header claims width x height: tests size limits without the pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # pytest resets filters
@pytest.mark.parametrize("size", [(20000, 20000), (11000, 10000)])
def test_too_large_refused_before_decoding(size):
    # 20000^2 trips PIL's own bomb guard; 110 M pixels is under PIL's but over ours
    assert size[0] * size[1] > MAX_IMAGE_PIXELS
    with pytest.raises(MediaError, match="image too large"):
        decode_image(crafted_png(*size))


def test_size_at_limit_is_checked_by_header_only():
    # an image under the limit passes the size check, then fails on its (missing) pixels
    with pytest.raises(MediaError, match="truncated or corrupt"):
        decode_image(crafted_png(1000, 1000))


def test_bad_media(tmp_path, chelsea):
    jpeg = write(tmp_path, chelsea, "cat.jpg")
    cases = {
        "empty": (b"", "empty image"),
        "missing": (None, "missing image"),
        "truncated jpeg": (jpeg[: len(jpeg) // 2], "truncated or corrupt image"),
        "random bytes": (np.random.default_rng(0).bytes(2048), "truncated or corrupt image"),
        "text": (b"hello, world", "cannot identify image file"),
        "png signature only": (b"\x89PNG\r\n\x1a\n", "truncated or corrupt image"),
        "audio": (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(24), "looks like audio"),
    }
    for label, (raw, message) in cases.items():
        with pytest.raises(MediaError, match=message):
            decode_image(raw)
        assert isinstance(MediaError(label), ValueError)


def test_unsupported_format(tmp_path, chelsea):
    raw = write(tmp_path, chelsea, "cat.ppm")
    with pytest.raises(MediaError, match="unsupported image format PPM"):
        decode_image(raw)


def test_bytes_like_inputs(tmp_path, chelsea):
    raw = write(tmp_path, chelsea, "cat.png")
    assert decode_image(bytearray(raw)).size == chelsea.size
    assert decode_image(memoryview(raw)).size == chelsea.size


def test_sniff_kind():
    assert sniff_kind(b"\xff\xd8\xff\xe0\x00\x10JFIF") == "image"
    assert sniff_kind(b"GIF89a\x01\x00") == "image"
    assert sniff_kind(b"II*\x00\x08\x00\x00\x00") == "image"
    assert sniff_kind(b"MM\x00*\x00\x00\x00\x08") == "image"
    assert sniff_kind(b"BM" + bytes(14)) == "image"
    assert sniff_kind(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image"
    assert sniff_kind(b"RIFF\x00\x00\x00\x00WAVEfmt ") == "audio"
    assert sniff_kind(b"fLaC\x00\x00\x00\x22") == "audio"
    assert sniff_kind(b"OggS\x00\x02") == "audio"
    assert sniff_kind(b"ID3\x04\x00\x00") == "audio"
    assert sniff_kind(b"\xff\xfb\x90\x64") == "audio"  # MPEG-1 layer III frame
    assert sniff_kind(b"") is None
    assert sniff_kind(b"hello world") is None
    assert sniff_kind(b"RIFF\x00\x00\x00\x00AVI LIST") is None
