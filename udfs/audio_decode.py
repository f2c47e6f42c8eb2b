"""Decode audio bytes (WAV, FLAC, OGG Vorbis, MP3, ...) into 16 kHz mono float32 for speech models.

Why here and not in the models: every audio function (transcription, voice activity) wants the same
thing, a mono waveform at one rate, and every bad value (empty, cut short, not audio at all, hours
long) must fail the same way, with a `MediaError` that says what was wrong.
"""

from __future__ import annotations

import io
import struct
from math import gcd

import numpy as np

from quarrydb.udfs.media_errors import MediaError

DEFAULT_RATE = 16000
DEFAULT_MAX_SECONDS = 7200.0

# A RIFF data chunk size of 0 or 0xFFFFFFFF is what streaming writers leave when they cannot seek
# back to fill it in; such a size says nothing about the length.
_UNKNOWN_RIFF_SIZES = (0, 0xFFFFFFFF)


def decode_audio(
    data: bytes, sample_rate: int = DEFAULT_RATE, max_seconds: float = DEFAULT_MAX_SECONDS
) -> np.ndarray:
    """Return `data` as float32 mono samples in [-1, 1] at `sample_rate`.

    Reads whatever libsndfile reads (WAV, FLAC, OGG Vorbis, MP3, AIFF, ...), at any rate and
    channel count; channels are averaged and the rate converted with a polyphase filter. The length
    is checked from the header before any sample is read, so a file claiming hours costs nothing.
    """
    import soundfile as sf

    if data is None or len(data) == 0:
        raise MediaError("audio value is empty")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    _check_riff_header(bytes(data[:65536]), len(data), max_seconds)
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate = int(f.samplerate)
            frames = int(f.frames)
            if rate <= 0:
                raise MediaError(f"audio header gives an invalid sample rate ({rate})")
            if 0 < frames < 2**62 and frames / rate > max_seconds:
                raise MediaError(_too_long(frames / rate, max_seconds))
            # Read in blocks so that a header that understates the length cannot make us read
            # hours of samples before noticing.
            limit = int(max_seconds * rate) + 1
            blocks = []
            total = 0
            for block in f.blocks(blocksize=1 << 18, dtype="float32", always_2d=True):
                blocks.append(block)
                total += len(block)
                if total > limit:
                    raise MediaError(_too_long(total / rate, max_seconds))
    except MediaError:
        raise
    except (RuntimeError, TypeError, ValueError, EOFError, OSError) as exc:
        raise MediaError(f"cannot decode audio: {_describe(exc)}") from exc
    if total == 0:
        raise MediaError("audio has no samples (empty or truncated)")
    samples = np.concatenate(blocks, axis=0)
    mono = samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]
    return _finish(mono, rate, sample_rate)


def decode_raw_pcm16(data: bytes, rate: int, sample_rate: int = DEFAULT_RATE) -> np.ndarray:
    """Return headerless signed 16-bit little-endian mono PCM at `rate` as float32 at `sample_rate`.

    Why: raw telephony/recorder dumps (such as pocketsphinx's goforward.raw) carry no header that
    libsndfile could recognise, so the caller has to say the rate.
    """
    if data is None or len(data) == 0:
        raise MediaError("audio value is empty")
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    usable = len(data) - len(data) % 2
    if usable == 0:
        raise MediaError("raw PCM value is shorter than one sample")
    samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
    return _finish(samples, rate, sample_rate)


def resample(waveform: np.ndarray, rate: int, sample_rate: int = DEFAULT_RATE) -> np.ndarray:
    """Convert float32 mono `waveform` from `rate` to `sample_rate` with the reduced ratio."""
    return _finish(np.asarray(waveform, dtype=np.float32), rate, sample_rate)


def _finish(mono: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    if rate != sample_rate and len(mono) > 0:
        from scipy.signal import resample_poly

        g = gcd(int(rate), int(sample_rate))
        mono = resample_poly(mono, sample_rate // g, rate // g).astype(np.float32, copy=False)
    mono = np.nan_to_num(mono, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)


def _check_riff_header(head: bytes, total_len: int, max_seconds: float) -> None:
    """Check a RIFF/WAVE header's declared length, which libsndfile silently clamps to the bytes.

    Why: libsndfile trusts the bytes it has, so a header claiming three hours over one second of
    samples, or a file cut off mid-transfer, would otherwise decode as a short clip without a word.
    """
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    pos = 12
    block_align = rate = 0
    while pos + 8 <= len(head):
        chunk_id = head[pos : pos + 4]
        (size,) = struct.unpack_from("<I", head, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt " and body + 16 <= len(head):
            _, _, rate, _, block_align = struct.unpack_from("<HHIIH", head, body)
        elif chunk_id == b"data":
            if size in _UNKNOWN_RIFF_SIZES or rate <= 0 or block_align <= 0:
                return
            declared = size / (rate * block_align)
            if declared > max_seconds:
                raise MediaError(
                    f"WAV header declares {_hms(declared)} of audio, more than the limit of "
                    f"{_hms(max_seconds)}"
                )
            present = max(0, total_len - body)
            if present + block_align < size:
                raise MediaError(
                    f"WAV file is truncated: header declares {declared:.2f} s of audio but only "
                    f"{present / (rate * block_align):.2f} s are present"
                )
            return
        pos = body + size + (size & 1)


def _too_long(seconds: float, max_seconds: float) -> str:
    return f"audio lasts {_hms(seconds)}, more than the limit of {_hms(max_seconds)}"


def _hms(seconds: float) -> str:
    whole = int(round(seconds))
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d} ({seconds:.1f} s)"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    # soundfile names the BytesIO object ("Error opening <_io.BytesIO object at 0x...>: ..."),
    # which means nothing to a user; keep only libsndfile's reason.
    if "BytesIO" in text and ":" in text:
        text = text.rsplit(":", 1)[1].strip()
    return text or type(exc).__name__
