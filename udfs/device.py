"""Which device the models run on: CUDA when present, otherwise CPU, unless the user says."""

from __future__ import annotations

import contextlib
from typing import Any


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def validate_device(name: str) -> str:
    """Check a device name given with `SET device = ...`; return it normalised."""
    import torch

    name = name.strip().lower()
    if name == "auto":
        return default_device()
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"unknown device {name!r}: use 'cpu', 'cuda', 'cuda:N' or 'auto'") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} is not available here: no CUDA GPU was found")
    return str(device)


def half_precision(device: str) -> Any:
    """fp16 autocast on a GPU (where it is safe for inference and twice as fast); no-op on CPU."""
    import torch

    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()
