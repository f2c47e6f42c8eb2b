"""Execute a stage: distinct inputs from DuckDB -> cache lookup -> batched model on the misses.

The stage's result is an Arrow table (its keys plus the output column) that the final query reads.
NULL inputs give NULL outputs and never reach a model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from quarrydb.engine import values
from quarrydb.engine.cache import ResultCache, call_key, content_hash
from quarrydb.engine.errors import OperationalError, ProgrammingError
from quarrydb.engine.planner import VALUE, Stage
from quarrydb.udfs.loaded_models import get_model

Progress = Callable[[str, int, int], None]


@dataclass
class StageStats:
    """What one stage did: the figures EXPLAIN ANALYZE and cursor.stats report."""

    stage: int
    function: str
    model: str
    rows_in: int = 0
    distinct_inputs: int = 0
    cache_hits: int = 0
    model_inputs: int = 0
    batches: list[int] = field(default_factory=list)
    seconds_input_query: float = 0.0
    seconds_model: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Settings:
    """Per-connection settings a user changes with SET."""

    device: str
    batch_size: int | None = None  # None: the model's own default


def _hash_value(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    return json.dumps(value, sort_keys=True, default=str).encode("utf-8")


def _check_input_type(stage: Stage, column: pa.ChunkedArray) -> None:
    spec = stage.call.binding.function
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        if pa.types.is_null(column.type):
            return
        raise ProgrammingError(
            f"{spec.name}() expects text for its input, got {column.type} in"
            f" {stage.call.text} (cast it, e.g. CAST(x AS VARCHAR))"
        )


def run_stage(
    stage: Stage,
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    progress: Progress | None = None,
) -> tuple[pa.Table, StageStats]:
    """Compute the stage's table: one row per distinct key tuple, with its output value."""
    call = stage.call
    binding = call.binding
    stats = StageStats(stage.number, binding.function.name, binding.model.name)
    started = time.perf_counter()
    try:
        inputs = con.sql(stage.input_sql).to_arrow_table()
    except duckdb.Error as exc:
        raise ProgrammingError(f"cannot compute the inputs of {call.text}: {exc}") from None
    stats.seconds_input_query = time.perf_counter() - started
    stats.rows_in = inputs.num_rows
    _check_input_type(stage, inputs.column(0))

    columns = [inputs.column(i).to_pylist() for i in range(inputs.num_columns)]
    rows = list(zip(*columns)) if columns else []
    outputs: list[Any] = [None] * len(rows)
    # Rows that vary in an option (e.g. a per-row label list) are computed group by group.
    groups: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        if any(v is None for v in row):
            continue
        groups.setdefault(json.dumps(row[1:], default=str), []).append(index)
    cache = ResultCache(con)
    output_type = binding.output_type
    for group_options, members in groups.items():
        options = dict(call.options)
        options.update(zip(call.key_params[1:], json.loads(group_options)))
        key = call_key(binding.function.name, binding.model.name, binding.model.revision, options)
        hashes = [content_hash(_hash_value(rows[i][0])) for i in members]
        unique: dict[str, Any] = {}
        for h, i in zip(hashes, members):
            unique.setdefault(h, rows[i][0])
        stats.distinct_inputs += len(unique)
        found = {h: values.decode(output_type, b) for h, b in cache.lookup(key, unique).items()}
        stats.cache_hits += len(found)
        missing = [h for h in unique if h not in found]
        if missing:
            computed = _evaluate(stage, settings, [unique[h] for h in missing], options, stats,
                                 progress)
            fresh = dict(zip(missing, computed))
            cache.store(key, {h: values.encode(output_type, v) for h, v in fresh.items()
                              if v is not None})
            found.update(fresh)
        for h, i in zip(hashes, members):
            outputs[i] = found[h]
    table = inputs.append_column(VALUE, values.to_arrow(output_type, outputs))
    return table, stats


def _evaluate(
    stage: Stage,
    settings: Settings,
    inputs: list[Any],
    options: dict[str, Any],
    stats: StageStats,
    progress: Progress | None,
) -> list[Any]:
    """Run the model over the inputs in batches of the model's batch size."""
    binding = stage.call.binding
    model = binding.model
    if not model.is_available():
        raise OperationalError(
            f"model {model.name!r} for {binding.function.name}() is not available here;"
            f" {model.how_to_get or 'see SHOW MODELS'}"
        )
    try:
        loaded = get_model(model, settings.device)
    except Exception as exc:  # a model that fails to load is the user's environment, not SQL
        raise OperationalError(f"cannot load model {model.name!r}: {exc}") from exc
    size = settings.batch_size or model.batch_size
    started = time.perf_counter()
    # Texts of like length share a batch, so little of each batch is padding.
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]) if isinstance(
        inputs[i], str) else 0)
    ordered = [inputs[i] for i in order]
    computed: list[Any] = []
    run_options = dict(options, batch_size=size)
    for start in range(0, len(ordered), size):
        batch = ordered[start : start + size]
        try:
            computed.extend(binding.implementation.kernel(loaded, batch, run_options))
        except ValueError as exc:
            raise ProgrammingError(f"{stage.call.text}: {exc}") from None
        stats.batches.append(len(batch))
        stats.model_inputs += len(batch)
        if progress is not None:
            progress(f"stage {stage.number}: {binding.function.name}", len(computed), len(inputs))
    stats.seconds_model += time.perf_counter() - started
    results: list[Any] = [None] * len(inputs)
    for position, value in zip(order, computed):
        results[position] = value
    return results
