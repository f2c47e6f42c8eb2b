"""Models stay loaded for the life of the process: loading is slow, a batch is fast."""

from __future__ import annotations

import threading
from typing import Any

from quarrydb.udfs.registry import ModelSpec

_loaded: dict[tuple[str, str, str], Any] = {}
_lock = threading.RLock()  # re-entrant: a composite model loads its parts through here
load_count = 0  # how many real loads happened; tests use it to show models load once


def get_model(spec: ModelSpec, device: str) -> Any:
    """Return the loaded model for (spec, device), loading it on first use only."""
    global load_count
    key = (spec.name, spec.revision, device)
    with _lock:
        if key not in _loaded:
            _loaded[key] = spec.load(device)
            load_count += 1
        return _loaded[key]
