"""Decode image bytes into RGB PIL images, refusing bad or oversized input with MediaError.

Why one function: every image model needs the same thing (an upright RGB picture), and every bad
value (empty, corrupt, unsupported, a decompression bomb) must fail the same clear way, before any
model sees it. Decoding is pure PIL, so it runs in CPU worker threads.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from quarrydb.udfs.media_errors import MediaError

MAX_IMAGE_PIXELS = 100_000_000
"""Images with more pixels than this (e.g. 20000 x 20000) are refused before their pixels decode."""

SUPPORTED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF")
"""PIL format names decode_image accepts (MPO is the multi-picture JPEG some cameras write)."""

# PIL warns from about 89 M pixels; decode_image enforces its own limit (refusing above it), so the
# warning for images just under MAX_IMAGE_PIXELS is noise. A filter set once here is thread-safe,
# unlike catch_warnings() around each call. PIL still raises DecompressionBombError above ~179 M.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")


def sniff_kind(data: bytes) -> str | None:
    """'image', 'audio' or None, from the leading magic bytes only.

    Why: lets callers give a useful error ("this is audio, not an image") and route blobs by
    content instead of trusting file extensions. It never decodes anything.
    """
    head = bytes(data[:16]) if data else b""
    if len(head) < 2:
        return None
    if head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"\xff\xd8\xff"):
        return "image"
    if head[:6] in (b"GIF87a", b"GIF89a") or head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image"
    if head.startswith(b"BM") and len(head) >= 14:
        return "image"
    if head.startswith(b"RIFF") and len(head) >= 12:
        if head[8:12] == b"WEBP":
            return "image"
        if head[8:12] == b"WAVE":
            return "audio"
        return None
    if head[:4] in (b"fLaC", b"OggS") or head.startswith(b"ID3"):
        return "audio"
    if head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:  # MPEG audio / ADTS frame sync
        return "audio"
    return None


def decode_image(data: bytes) -> Image.Image:
    """Decode JPEG, PNG, WebP, GIF (first frame), BMP or TIFF bytes to an upright RGB image.

    EXIF orientation is applied; greyscale, palette, 16-bit and alpha images become RGB (alpha is
    composited on white). Raises MediaError for missing, empty, corrupt, truncated, unsupported or
    too large (more than MAX_IMAGE_PIXELS) input; the size is checked from the header, before the
    pixels are decoded.
    """
    if data is None:
        raise MediaError("missing image: no data")
    if not isinstance(data, bytes):
        data = bytes(data)
    if not data:
        raise MediaError("empty image: 0 bytes")
    try:
        img = Image.open(io.BytesIO(data))  # lazy: reads the header only
    except Image.DecompressionBombError as exc:
        raise MediaError(_too_large(exc)) from None
    except UnidentifiedImageError:
        if sniff_kind(data) == "audio":
            raise MediaError("not an image: the data looks like audio") from None
        raise MediaError("truncated or corrupt image: cannot identify image file") from None
    except Exception as exc:  # PIL plugins raise many types on malformed headers
        raise MediaError(f"truncated or corrupt image: {exc}") from None
    if img.format not in SUPPORTED_FORMATS:
        raise MediaError(
            f"unsupported image format {img.format}: use JPEG, PNG, WebP, GIF, BMP or TIFF"
        )
    width, height = img.size
    if width <= 0 or height <= 0:
        raise MediaError(f"truncated or corrupt image: size {width}x{height}")
    if width * height > MAX_IMAGE_PIXELS:
        raise MediaError(
            f"image too large: {width}x{height} pixels exceeds the limit of {MAX_IMAGE_PIXELS:,}"
        )
    try:
        img.load()  # decode now so truncation is detected here, not inside a model
    except Image.DecompressionBombError as exc:
        raise MediaError(_too_large(exc)) from None
    except MemoryError:
        raise MediaError(f"image too large: out of memory decoding {width}x{height}") from None
    except Exception as exc:
        raise MediaError(f"truncated or corrupt image: {exc}") from None
    try:
        img = ImageOps.exif_transpose(img) or img
    except Exception:  # a broken EXIF block should not lose an otherwise good picture
        pass
    try:
        return _to_rgb(img)
    except Exception as exc:
        raise MediaError(f"unsupported image mode {img.mode}: {exc}") from None


def _too_large(exc: Exception) -> str:
    """PIL's own decompression-bomb guard fired: report it in our words, keeping its detail."""
    return f"image too large: more than {MAX_IMAGE_PIXELS:,} pixels ({exc})"


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to RGB: alpha on white, high bit depth scaled (not clipped) to 8 bits."""
    if "transparency" in img.info and img.mode in ("P", "L", "RGB", "1"):
        img = img.convert("RGBA")
    if img.mode == "RGB":
        return img
    if img.mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode.startswith("I") or img.mode == "F":
        grey = _scale_to_uint8(np.asarray(img), sixteen_bit=img.mode.startswith("I;16"))
        return Image.fromarray(grey).convert("RGB")
    return img.convert("RGB")


def _scale_to_uint8(pixels: np.ndarray, sixteen_bit: bool) -> np.ndarray:
    """Scale 16-bit, 32-bit or float greyscale to 0..255 by bit depth (by range for floats)."""
    if pixels.ndim == 3:
        pixels = pixels[..., 0]
    if pixels.dtype.kind in "ui":
        top = float(pixels.max(initial=0))
        if sixteen_bit or 255 < top <= 65535:
            scale = 65535.0
        else:
            scale = 255.0 if top <= 255 else top
        scaled = pixels.astype(np.float64) * (255.0 / scale)
        return np.clip(scaled, 0, 255).round().astype(np.uint8)
    pixels = np.nan_to_num(pixels.astype(np.float64))
    low, high = float(pixels.min(initial=0.0)), float(pixels.max(initial=0.0))
    if 0.0 <= low and high <= 1.0:
        return (pixels * 255.0).round().astype(np.uint8)
    span = high - low or 1.0
    return ((pixels - low) * (255.0 / span)).round().astype(np.uint8)
