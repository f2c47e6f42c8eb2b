"""Model outputs in three forms: Python values from kernels, BLOBs in the cache, Arrow columns.

The output type is a DuckDB type name declared by the function: VARCHAR, FLOAT[n] (a fixed-size
vector) or FLOAT[] (a vector of any length).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

_VECTOR = re.compile(r"^FLOAT\[(\d*)\]$")


def vector_size(output_type: str) -> int | None:
    """n for FLOAT[n]; None for any other type (FLOAT[] gives None too)."""
    match = _VECTOR.match(output_type)
    return int(match.group(1)) if match and match.group(1) else None


def is_vector(output_type: str) -> bool:
    return bool(_VECTOR.match(output_type))


def encode(output_type: str, value: Any) -> bytes:
    if is_vector(output_type):
        return np.asarray(value, dtype=np.float32).tobytes()
    if output_type == "VARCHAR":
        return str(value).encode("utf-8")
    raise TypeError(f"no cache encoding for output type {output_type}")


def decode(output_type: str, blob: bytes) -> Any:
    if is_vector(output_type):
        return np.frombuffer(blob, dtype=np.float32)
    return blob.decode("utf-8")


def arrow_type(output_type: str) -> pa.DataType:
    if is_vector(output_type):
        size = vector_size(output_type)
        return pa.list_(pa.float32(), size) if size else pa.list_(pa.float32())
    return pa.string()


def to_arrow(output_type: str, values: Sequence[Any]) -> pa.Array:
    """An Arrow column of results; None entries become NULL."""
    kind = arrow_type(output_type)
    if not is_vector(output_type):
        return pa.array(values, type=kind)
    size = vector_size(output_type)
    if size is None:
        return pa.array([None if v is None else np.asarray(v).tolist() for v in values], type=kind)
    flat = np.zeros((len(values), size), dtype=np.float32)
    mask = np.ones(len(values), dtype=bool)
    for row, value in enumerate(values):
        if value is not None:
            flat[row] = value
            mask[row] = False
    return pa.FixedSizeListArray.from_arrays(
        pa.array(flat.reshape(-1)), size, mask=pa.array(mask)
    )
