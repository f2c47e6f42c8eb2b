"""Real image captioning through transformers (BLIP, GIT, ViT-GPT2, ...) from a local directory.

No captioner ships inside a Python package, so this runs only where weights are present:
`caption(x, 'hf-caption:/models/blip-base')`, or by default when <model dir>/caption/ holds one.
Elsewhere caption() falls back to the offline stand-in (imagenet-minilm-bridge), named as such.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quarrydb.udfs.registry import Binding, FunctionSpec, Implementation, ModelSpec

PREFIX = "hf-caption:"
MAX_NEW_TOKENS = 30


class Captioner:
    """A transformers image-to-text model with its processor, kept loaded."""

    def __init__(self, model: Any, processor: Any, tokenizer: Any, device: str) -> None:
        self.model = model
        self.processor = processor
        self.tokenizer = tokenizer
        self.device = device

    def preprocess(self, image: Any) -> Any:
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]

    def caption(self, pixel_values: Any) -> list[str]:
        import torch

        with torch.inference_mode():
            pixels = pixel_values.to(self.device, dtype=next(self.model.parameters()).dtype)
            tokens = self.model.generate(pixel_values=pixels, max_new_tokens=MAX_NEW_TOKENS)
        return [t.strip() for t in self.tokenizer.batch_decode(tokens, skip_special_tokens=True)]


def load_captioner(path: Path, device: str) -> Captioner:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True)
    if torch.device(device).type == "cuda":
        model = model.half()
    tokenizer = getattr(processor, "tokenizer", None) or AutoTokenizer.from_pretrained(
        path, local_files_only=True
    )
    return Captioner(model.to(device).eval(), processor, tokenizer, device)


def prepare(model: Captioner, data: bytes) -> Any:
    from quarrydb.udfs.image_decode import decode_image

    return model.preprocess(decode_image(data))


def caption_kernel(model: Captioner, batch: Sequence[Any], options: dict[str, Any]) -> list[str]:
    import torch

    return model.caption(torch.stack(list(batch)))


def looks_like_captioner(path: Path) -> bool:
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(config.get("model_type"))


def resolve_captioner(function: FunctionSpec, name: str, modality: str) -> Binding | None:
    if function.name != "caption" or modality != "image" or not name.startswith(PREFIX):
        return None
    path = Path(name[len(PREFIX):]).expanduser()
    stamp = path / "config.json"
    spec = ModelSpec(
        name=name,
        modality="image",
        source="file",
        revision=str(stamp.stat().st_mtime_ns) if stamp.exists() else "missing",
        load=lambda device: load_captioner(path, device),
        is_available=lambda: looks_like_captioner(path),
        batch_size=16,
        description="a transformers image captioner from a local directory",
        how_to_get="pass a directory saved with save_pretrained (config.json, weights, processor)",
    )
    return Binding(function, spec, Implementation(caption_kernel, "VARCHAR", prepare))


def local_captioner(model_dir: Path) -> str | None:
    """`hf-caption:<model dir>/caption` when a captioner has been put there."""
    folder = model_dir / "caption"
    return f"{PREFIX}{folder}" if looks_like_captioner(folder) else None
