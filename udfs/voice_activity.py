"""Speech / no-speech detection with the packaged silero-vad model.

Why a wrapper: silero's own audio reader needs torchaudio, which quarrydb does not install; audio is
decoded by `quarrydb.udfs.audio_decode` instead and handed over as a 16 kHz numpy waveform. The
model keeps recurrent state between calls, so calls are serialised with a lock.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

SAMPLE_RATE = 16000


class SpeechDetector:
    """A loaded silero-vad model answering whether, and where, a 16 kHz waveform has speech."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._lock = threading.Lock()

    def speech_segments(
        self, waveform16k: np.ndarray, threshold: float = 0.5, min_speech_ms: int = 250
    ) -> list[tuple[float, float]]:
        """Return (start, end) seconds of each speech segment in `waveform16k`."""
        import torch
        from silero_vad import get_speech_timestamps

        wave = np.asarray(waveform16k, dtype=np.float32).reshape(-1)
        if wave.size < 512:  # shorter than one silero window (32 ms): nothing to judge
            return []
        audio = torch.from_numpy(np.ascontiguousarray(wave))
        with self._lock, torch.inference_mode():
            stamps = get_speech_timestamps(
                audio,
                self.model,
                threshold=threshold,
                sampling_rate=SAMPLE_RATE,
                min_speech_duration_ms=min_speech_ms,
                return_seconds=False,
            )
        return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]

    def has_speech(self, waveform16k: np.ndarray, threshold: float = 0.5) -> bool:
        """True when silero finds at least one speech segment of 250 ms or more."""
        return bool(self.speech_segments(waveform16k, threshold=threshold))


def load_silero_vad() -> SpeechDetector:
    """Load silero-vad's packaged TorchScript model (CPU: it is too small for a GPU to help)."""
    import warnings

    import silero_vad

    with warnings.catch_warnings():
        # silero ships TorchScript and finds it with importlib.resources.path; torch and
        # importlib warn that both are deprecated, which the caller can do nothing about.
        warnings.filterwarnings("ignore", message=".*torch.jit.load.*", category=FutureWarning)
        warnings.filterwarnings("ignore", message="path is deprecated", category=DeprecationWarning)
        model = silero_vad.load_silero_vad()
    return SpeechDetector(model)
