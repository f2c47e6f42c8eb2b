"""Execute a stage: distinct inputs from DuckDB -> cache lookup -> batched model on the misses.

Text values are hashed as they are. Media values (paths, file:// URIs, BLOBs) are read in worker
threads, hashed by content, told apart by kind (image / audio / text file), and decoded in worker
threads ahead of the model, a bounded chunk at a time so memory stays flat on a folder of any size.
NULL inputs give NULL outputs and never reach a model; a value that fails gives NULL and a warning
(or an error with `SET on_media_error = 'raise'`), and a failure is never cached.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from quarrydb.engine import values
from quarrydb.engine.cache import ResultCache, call_key, content_hash
from quarrydb.engine.errors import DataError, OperationalError, ProgrammingError, from_duckdb
from quarrydb.engine.planner import VALUE, Stage
from quarrydb.udfs import Binding
from quarrydb.udfs.loaded_models import get_model
from quarrydb.udfs.media_errors import Failed, MediaError
from quarrydb.udfs.media_functions import prepare_text_file
from quarrydb.udfs.media_input import describe, kind_of, read_bytes

Progress = Callable[[str, int, int], None]
MEDIA_CHUNK = 256  # media values read, decoded and held at once
TEXT_CHUNK = 8192
WORKERS = max(2, os.cpu_count() or 2)


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
    failed: int = 0
    batches: list[int] = field(default_factory=list)
    seconds_input_query: float = 0.0
    seconds_read: float = 0.0
    seconds_model: float = 0.0
    stopped_early: bool = False  # limit_rule: the rest of the inputs never reached a model

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Settings:
    """Per-connection settings a user changes with SET."""

    device: str
    batch_size: int | None = None  # None: the model's own default
    on_media_error: str = "null"  # or "raise"
    optimizer: bool = True  # off: the baseline, every row to the model, no cache


@dataclass
class Item:
    """One distinct input value on its way through the stage."""

    value: Any
    rows: list[int]
    data: bytes | None = None  # media content
    kind: str = "text"
    digest: str = ""
    failure: str | None = None


class StageRun:
    """The work of one stage, with the connection, settings and counters it shares."""

    def __init__(
        self,
        stage: Stage,
        con: duckdb.DuckDBPyConnection,
        settings: Settings,
        progress: Progress | None,
    ) -> None:
        self.stage = stage
        self.call = stage.call
        self.con = con
        self.settings = settings
        self.progress = progress
        self.cache = ResultCache(con)
        self.stats = StageStats(stage.number, self.call.binding.function.name,
                                self.call.model_names)
        self.warnings: list[str] = []
        self.is_media = self.call.modality != "text"

    def inputs(self) -> pa.Table:
        """The stage's input rows, computed by DuckDB."""
        started = time.perf_counter()
        try:
            inputs = self.con.sql(self.stage.input_sql).to_arrow_table()
        except duckdb.Error as exc:  # DuckDB's class: an IO Error stays an OperationalError
            message = f"cannot compute the inputs of {self.call.text}: {exc}"
            raise type(from_duckdb(exc))(message) from None
        self.stats.seconds_input_query += time.perf_counter() - started
        return inputs

    def run(self, inputs: pa.Table | None = None) -> pa.Table:
        """Outputs for `inputs` (by default, all of the stage's input rows)."""
        if inputs is None:
            inputs = self.inputs()
        self.stats.rows_in += inputs.num_rows
        inputs = _enums_as_text(inputs)
        self._check_input_type(inputs.column(0))
        columns = [inputs.column(i).to_pylist() for i in range(inputs.num_columns)]
        rows = list(zip(*columns)) if columns else []
        outputs: list[Any] = [None] * len(rows)
        # Rows that differ in an option (e.g. a per-row label list) are computed group by group.
        groups: dict[str, dict[Any, Item]] = {}
        for index, row in enumerate(rows):
            if any(v is None for v in row):
                continue
            group = groups.setdefault(json.dumps(row[1:], default=str), {})
            value = bytes(row[0]) if isinstance(row[0], (bytes, bytearray, memoryview)) else row[0]
            key = value if self.settings.optimizer else index  # baseline: row by row
            group.setdefault(key, Item(value, [])).rows.append(index)
        for group_options, items in groups.items():
            options = dict(self.call.options)
            options.update(zip(self.call.key_params[1:], json.loads(group_options)))
            self.stats.distinct_inputs += len(items)
            chunk = MEDIA_CHUNK if self.is_media else TEXT_CHUNK
            item_list = list(items.values())
            for start in range(0, len(item_list), chunk):
                for item, result in self._compute(item_list[start : start + chunk], options):
                    for row in item.rows:
                        outputs[row] = result
        table = inputs.append_column(VALUE, values.to_arrow(self.call.binding.output_type, outputs))
        if not self.settings.optimizer:  # the baseline ran every row; lookups need unique keys
            first: dict[str, int] = {}
            for index, row in enumerate(rows):
                first.setdefault(repr(row), index)
            table = table.take(sorted(first.values()))
        return table

    # --- one chunk of distinct values ----------------------------------------------------------

    def _compute(self, items: list[Item], options: dict[str, Any]) -> list[tuple[Item, Any]]:
        self._identify(items)
        done: list[tuple[Item, Any]] = []
        by_binding: dict[str, list[Item]] = {}
        for item in items:
            if item.failure is None and item.kind not in self.call.bindings:
                readable = " or ".join(self.call.bindings)
                item.failure = f"{item.kind or 'unrecognised'} media, {self._name} reads {readable}"
            if item.failure is not None:
                done.append((item, self._fail(item)))
            else:
                by_binding.setdefault(item.kind, []).append(item)
        for kind, group in by_binding.items():
            done.extend(self._compute_with(self.call.bindings[kind], group, options))
        for item in items:
            item.data = None  # the chunk is done: its bytes go, so memory stays flat
        return done

    def _identify(self, items: list[Item]) -> None:
        """Content, kind and content hash of each value (media files are read in parallel)."""
        if not self.is_media:
            for item in items:
                item.digest = content_hash(_text_bytes(item.value))
            return
        started = time.perf_counter()
        with ThreadPoolExecutor(WORKERS) as pool:
            for item, outcome in zip(items, pool.map(_read, [i.value for i in items])):
                if isinstance(outcome, MediaError):
                    item.failure = str(outcome)
                    continue
                item.data = outcome
                item.digest = content_hash(outcome)
                kind = self.call.modality
                item.kind = kind_of(outcome, item.value) if kind == "media" else kind
        self.stats.seconds_read += time.perf_counter() - started

    def _compute_with(
        self, binding: Binding, items: list[Item], options: dict[str, Any]
    ) -> list[tuple[Item, Any]]:
        output_type = binding.output_type
        model = binding.model
        key = call_key(binding.function.name, model.name, model.revision, options)
        reuse = self.settings.optimizer
        cached = self.cache.lookup(key, {i.digest for i in items}) if reuse else {}
        self.stats.cache_hits += sum(1 for i in items if i.digest in cached)
        done = [(i, values.decode(output_type, cached[i.digest])) for i in items
                if i.digest in cached]
        missing = [i for i in items if i.digest not in cached]
        if reuse:
            missing = _first_per_digest(missing)
        if not missing:
            return done
        fresh: dict[str, bytes] = {}
        for item, result in zip(missing, self._evaluate(binding, missing, options)):
            if isinstance(result, Failed):
                item.failure = result.reason
                result = self._fail(item)
            elif result is not None:
                fresh[item.digest] = values.encode(output_type, result)
            done.append((item, result))
        if reuse:
            self.cache.store(key, fresh)
        # Values with the same content as a computed one share its result.
        by_digest = {i.digest: r for i, r in done}
        computed = {id(i) for i in missing}
        done += [(i, by_digest.get(i.digest)) for i in items
                 if i.digest not in cached and id(i) not in computed]
        return done

    # --- the model -----------------------------------------------------------------------------

    def _evaluate(self, binding: Binding, items: list[Item], options: dict[str, Any]) -> list[Any]:
        """Prepare (in worker threads, ahead of the model) and run the model in batches."""
        model = binding.model
        if not model.is_available():
            raise OperationalError(
                f"model {model.name!r} for {binding.function.name}() is not available here;"
                f" {model.how_to_get or 'see SHOW MODELS'}"
            )
        try:
            loaded = get_model(model, self.settings.device)
        except Exception as exc:  # the user's environment, not their SQL: say which model
            raise OperationalError(f"cannot load model {model.name!r}: {exc}") from exc
        size = self.settings.batch_size or model.batch_size
        if not self.is_media:  # texts of like length share a batch: less padding
            order = sorted(range(len(items)), key=lambda i: len(items[i].value))
        else:
            order = list(range(len(items)))
        prepare = binding.implementation.prepare
        if self.is_media and prepare is None:
            prepare = prepare_text_file  # a text file is read for its words
        results: list[Any] = [None] * len(items)
        run_options = dict(options, batch_size=size)
        started = time.perf_counter()
        with ThreadPoolExecutor(WORKERS) as pool:
            prepared = self._prepared(pool, prepare, loaded, [items[i] for i in order])
            for batch in _batches(zip(order, prepared), size):
                good = [(i, p) for i, p in batch if not isinstance(p, Failed)]
                for i, p in batch:
                    if isinstance(p, Failed):
                        results[i] = p
                outputs = self._run_kernel(binding, loaded, [p for _, p in good], run_options)
                for (i, _), output in zip(good, outputs):
                    results[i] = output
                self.stats.batches.append(len(good))
                self.stats.model_inputs += len(good)
                if self.progress is not None:
                    done = sum(self.stats.batches)
                    self.progress(f"stage {self.stage.number}: {self._name}", done, len(items))
        self.stats.seconds_model += time.perf_counter() - started
        return results

    def _prepared(
        self, pool: ThreadPoolExecutor, prepare: Any, loaded: Any, items: list[Item]
    ) -> Iterator[Any]:
        if prepare is None:
            return iter([item.value for item in items])

        def one(item: Item) -> Any:
            try:
                return prepare(loaded, item.data)
            except MediaError as exc:
                return Failed(str(exc))

        return pool.map(one, items)

    def _run_kernel(
        self, binding: Binding, loaded: Any, batch: list[Any], options: dict[str, Any]
    ) -> list[Any]:
        """Run one batch; a batch that runs out of device memory is split and retried."""
        if not batch:
            return []
        try:
            return list(binding.implementation.kernel(loaded, batch, options))
        except MediaError:
            raise
        except ValueError as exc:
            raise ProgrammingError(f"{self.call.text}: {exc}") from None
        except Exception as exc:
            if not _is_out_of_memory(exc) or len(batch) == 1:
                raise
            _free_device_memory()
            half = len(batch) // 2
            return (self._run_kernel(binding, loaded, batch[:half], options)
                    + self._run_kernel(binding, loaded, batch[half:], options))

    # --- failures ------------------------------------------------------------------------------

    @property
    def _name(self) -> str:
        return f"{self.call.binding.function.name}()"

    def _fail(self, item: Item) -> None:
        message = f"{self._name}: {describe(item.value)}: {item.failure}"
        if self.settings.on_media_error == "raise":
            raise DataError(message)
        self.stats.failed += 1
        self.warnings.append(message)
        return None

    def _check_input_type(self, column: pa.ChunkedArray) -> None:
        kind = column.type
        if pa.types.is_null(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return
        if self.is_media and (pa.types.is_binary(kind) or pa.types.is_large_binary(kind)):
            return
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            raise ProgrammingError(
                f"{self._name} got a BLOB in {self.call.text}: mark it as media with image(x) or"
                " audio(x)"
            )
        wanted = "text" if not self.is_media else "a path, file:// URI or BLOB"
        raise ProgrammingError(
            f"{self._name} expects {wanted} for its input, got {kind} in {self.call.text}"
            " (cast it, e.g. CAST(x AS VARCHAR))"
        )


def _enums_as_text(inputs: pa.Table) -> pa.Table:
    """An ENUM input (Arrow's dictionary of strings) read as its text, as DuckDB's own string
    functions read it."""
    column = inputs.column(0)
    if pa.types.is_dictionary(column.type) and pa.types.is_string(column.type.value_type):
        return inputs.set_column(0, inputs.field(0).name, column.cast(pa.string()))
    return inputs


def _read(value: Any) -> bytes | MediaError:
    try:
        return read_bytes(value)
    except MediaError as exc:
        return exc


def _text_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, sort_keys=True, default=str).encode("utf-8")


def _first_per_digest(items: list[Item]) -> list[Item]:
    seen: dict[str, Item] = {}
    for item in items:
        seen.setdefault(item.digest, item)
    return list(seen.values())


def _batches(pairs: Iterator[tuple[int, Any]], size: int) -> Iterator[list[tuple[int, Any]]]:
    batch: list[tuple[int, Any]] = []
    for pair in pairs:
        batch.append(pair)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _is_out_of_memory(exc: Exception) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def _free_device_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


__all__: Sequence[str] = ["Settings", "StageRun", "StageStats"]
