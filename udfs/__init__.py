"""Model functions: the registry, model loading, decoding and the batch kernels.

Nothing here knows about SQL; the engine asks `default_registry()` what exists.
"""

from __future__ import annotations

from functools import lru_cache

from quarrydb.udfs.registry import Binding, FunctionSpec, ModelSpec, Registry, UnknownModelError

__all__ = [
    "Binding",
    "FunctionSpec",
    "ModelSpec",
    "Registry",
    "UnknownModelError",
    "default_registry",
]


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    from quarrydb.udfs.builtin import build_registry

    return build_registry()
