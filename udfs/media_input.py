"""Turn a media value — a path, a file:// URI or a BLOB — into bytes, and tell its kind.

The kind comes from the content first (magic bytes) and from the file name second, so a BLOB
needs no name and a mislabelled file is still read for what it is.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from quarrydb.udfs.image_decode import sniff_kind
from quarrydb.udfs.media_errors import MediaError

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff")
AUDIO_EXTENSIONS = ("wav", "flac", "ogg", "oga", "mp3", "opus", "aif", "aiff")
TEXT_EXTENSIONS = ("txt", "md", "rst", "csv", "json", "html", "htm", "xml", "log")
MAX_FILE_BYTES = 2 * 1024**3  # 2 GiB: larger values are refused before they are read


def describe(value: str | bytes) -> str:
    """How a warning names a value: the path, or the size of a BLOB."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<BLOB of {len(value)} bytes>"
    return str(value)


def local_path(value: str) -> Path:
    if value.startswith("file://"):
        return Path(unquote(urlparse(value).path))
    return Path(value).expanduser()


def read_bytes(value: str | bytes) -> bytes:
    """The content of a media value; MediaError for a missing, unreadable or empty one."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    else:
        path = local_path(value)
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise MediaError(f"file too large: {size} bytes")
            data = path.read_bytes()
        except FileNotFoundError:
            raise MediaError("missing file") from None
        except IsADirectoryError:
            raise MediaError("is a directory, not a file") from None
        except OSError as exc:
            raise MediaError(f"cannot read file: {exc.strerror or exc}") from None
    if not data:
        raise MediaError("empty (0 bytes)")
    return data


def kind_of(data: bytes, value: str | bytes) -> str | None:
    """'image', 'audio', 'text' or None (unsupported)."""
    sniffed = sniff_kind(data)
    if sniffed:
        return sniffed
    if isinstance(value, str):
        extension = local_path(value).suffix.lower().lstrip(".")
        if extension in TEXT_EXTENSIONS:
            return "text"
        if extension in IMAGE_EXTENSIONS:
            return "image"  # named as an image but unrecognised: the decoder says what is wrong
        if extension in AUDIO_EXTENSIONS:
            return "audio"
    return None
