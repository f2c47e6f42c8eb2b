"""Which device the models run on: CUDA when present, otherwise CPU, unless the user says."""

from __future__ import annotations


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
