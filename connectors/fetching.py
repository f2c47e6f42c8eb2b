"""Results as DB-API and DuckDB's Python API fetch them: Python rows as DuckDB's own fetch gives
them, Arrow, pandas, NumPy and polars, read on from what was fetched before."""

from __future__ import annotations

import importlib.util
from typing import Any

import duckdb
import pyarrow as pa
from duckdb.sqltypes import DuckDBPyType

from quarrydb.connectors.table_format import MAX_ROWS, format_table
from quarrydb.engine.errors import NotSupportedError, ProgrammingError, from_duckdb
from quarrydb.engine.result_types import type_ids
from quarrydb.engine.session import Result

# DuckDB type ids whose values pyarrow's to_pylist of DuckDB's Arrow gives as DuckDB's own
# fetch does. Not: TIME (DuckDB gives 24:00:00 as a str), MAP (a dict), INTERVAL (a
# timedelta), HUGEINT (an int), UUID (a uuid.UUID), ARRAY (a tuple), TIMESTAMP_NS (a
# datetime), TIMETZ, BIT, BIGNUM, ...: DuckDB converts those (see _duckdb_rows). A DATE or
# TIMESTAMP out of Python's range makes pyarrow raise; DuckDB converts it too.
PYARROW_EXACT = frozenset({
    "boolean", "tinyint", "smallint", "integer", "bigint", "utinyint", "usmallint", "uinteger",
    "ubigint", "float", "double", "decimal", "varchar", "blob", "null", "enum", "date",
    "timestamp", "timestamp_s", "timestamp_ms", "timestamp with time zone", "list", "struct",
    "union",
})
# Rows: DuckDB converts a fetch of this many, in half pyarrow's time (but ARRAYs: see between).
DUCKDB_CONVERTS_FROM = 10_000
# Rows DuckDB converts at once for a smaller fetch: each conversion costs about 0.5 ms.
DUCKDB_BLOCK = 2048


class Fetching:
    """The fetch methods of a result, in DB-API and DuckDB's shapes: Python rows, Arrow,
    pandas, NumPy, polars. Each reads on from what was fetched before, as DuckDB's do."""

    arraysize = 1
    _rows: PythonRows | None
    _position: int

    def _fetchable(self) -> pa.Table | None:
        """The result's table; None for a statement that returns no rows (CREATE, SET, ...)."""
        raise NotImplementedError

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self.fetchmany(1)
        return rows[0] if rows else None

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        table = self._fetchable()
        size = self.arraysize if size is None else size
        if not isinstance(size, int) or isinstance(size, bool):
            raise ProgrammingError(f"fetchmany's size (and arraysize) is a number of rows, not"
                                   f" {type(size).__name__}")
        if table is None:
            return []
        return self._next_rows(min(table.num_rows, self._position + max(size, 0)))

    def fetchall(self) -> list[tuple[Any, ...]]:
        """The rest of the rows ([] after a statement that returns none, as DuckDB)."""
        table = self._fetchable()
        return [] if table is None else self._next_rows(table.num_rows)

    def fetch_arrow_table(self) -> pa.Table:
        """The rest of the result as an Arrow table (DuckDB's Arrow of its types)."""
        table = self._fetchable()
        if table is None:
            return pa.table({})
        rest = table.slice(self._position)
        self._position = table.num_rows
        return rest

    def to_arrow_table(self) -> pa.Table:
        """DuckDB's name for fetch_arrow_table."""
        return self.fetch_arrow_table()

    def fetchdf(self) -> Any:
        """The rest of the result as a pandas DataFrame, as DuckDB's df() makes it (a NULL
        INTEGER column is Int32 with <NA>, a DATE datetime64, an INTERVAL a Timedelta, ...)."""
        table = self._fetchable()
        if table is None:
            return pa.table({}).to_pandas()
        assert self._rows is not None  # as there is a table
        frame = self._rows.frame(self._position)
        self._position = table.num_rows
        return frame

    def df(self) -> Any:
        """DuckDB's name for fetchdf."""
        return self.fetchdf()

    def fetch_df(self) -> Any:
        """DuckDB's other name for fetchdf."""
        return self.fetchdf()

    def fetchnumpy(self) -> dict[str, Any]:
        """The rest of the result as DuckDB's fetchnumpy gives it: a NumPy array per column
        (masked where there are NULLs)."""
        table = self._fetchable()
        if table is None:
            return {}
        assert self._rows is not None
        arrays = self._rows.numpy(self._position)
        self._position = table.num_rows
        return arrays

    def pl(self) -> Any:
        """The rest of the result as a polars DataFrame (of DuckDB's Arrow, as DuckDB's pl()
        makes it); polars is not one of quarrydb's dependencies."""
        if importlib.util.find_spec("polars") is None:
            raise NotSupportedError("pl() needs polars, which is not installed"
                                    " (pip install polars; or use df() or arrow())")
        import polars

        return polars.from_arrow(self.fetch_arrow_table())

    def _next_rows(self, stop: int) -> list[tuple[Any, ...]]:
        assert self._rows is not None  # as there is a table (see _fetchable)
        rows = self._rows.between(self._position, stop) if stop > self._position else []
        self._position = max(stop, self._position)
        return rows


class QueryResult(Fetching):
    """What con.sql(query) returns: the statement's whole result, run at once (eager; DuckDB's
    relations are lazy, and quarrydb builds no relation algebra on them). Fetch it as from a
    cursor, or print it with show()."""

    def __init__(self, result: Result, rows: PythonRows) -> None:
        self._result = result
        self._rows = rows
        self._position = 0

    @property
    def columns(self) -> list[str]:
        return self._rows.table.column_names if self._rows is not None else []

    @property
    def types(self) -> list[DuckDBPyType]:
        return self._rows.types if self._rows is not None else []

    @property
    def description(self) -> list[tuple[Any, ...]]:
        return [(name, type_, None, None, None, None, None)
                for name, type_ in zip(self.columns, self.types)]

    def arrow(self) -> pa.RecordBatchReader:
        """The rest of the result as an Arrow RecordBatchReader, as DuckDB 2's relation gives
        it (fetch_arrow_table() gives a table)."""
        return self.fetch_arrow_table().to_reader()

    def show(self, max_rows: int = MAX_ROWS) -> None:
        """Print the whole result as DuckDB's relation show() prints it (its box renderer)."""
        assert self._rows is not None
        print(format_table(self._rows.table, max_rows, types=self._rows.types,
                           con=self._rows.con))

    def __len__(self) -> int:
        return self._rows.table.num_rows if self._rows is not None else 0

    def __repr__(self) -> str:
        return f"<quarrydb.QueryResult: {len(self)} rows, columns {self.columns}>"

    def _fetchable(self) -> pa.Table | None:
        return self._result.table


class PythonRows:
    """A result's rows as Python values: those DuckDB's own fetch gives for its types. A few
    rows (an index search's) come from pyarrow, where it gives the same values: DuckDB's
    conversion costs about 0.5 ms however few the rows. Others come from DuckDB."""

    def __init__(self, result: Result, con: duckdb.DuckDBPyConnection) -> None:
        assert result.table is not None
        self.table: pa.Table = result.table
        self._exact = result.exact
        self._types = result.types
        self._con = con
        self._how: list[str | None] | None = None  # see _by_pyarrow
        self._kept: tuple[int, list[tuple[Any, ...]]] = (0, [])  # DuckDB's rows from a start

    @property
    def types(self) -> list[DuckDBPyType]:
        if self._types is None:  # a table the engine made: DuckDB's types of its Arrow
            self._types = self._con.from_arrow(self.table.schema.empty_table()).types
        return self._types

    def between(self, start: int, stop: int) -> list[tuple[Any, ...]]:
        if self._how is None:
            self._how = [_by_pyarrow(t) for t in self.types]
        # Many rows: DuckDB's conversion is the faster, but for ARRAYs (tuples).
        if None not in self._how and (stop - start < DUCKDB_CONVERTS_FROM
                                      or "tuples" in self._how):
            try:
                return _pyarrow_rows(self.table.slice(start, stop - start), self._how)
            except (ValueError, OverflowError):  # a date out of Python's range
                pass
        return self._duckdb_rows(start, stop)

    def _duckdb_rows(self, start: int, stop: int) -> list[tuple[Any, ...]]:
        """Rows DuckDB converts: a small fetch gets a block of them, kept for the next."""
        kept_start, kept = self._kept
        if kept_start <= start and stop <= kept_start + len(kept):
            return kept[start - kept_start:stop - kept_start]
        count = stop - start
        source = self._exact if self._exact is not None else self.table
        rows = _duckdb_rows(self._con, source.slice(start, max(count, DUCKDB_BLOCK)),
                            self.types)
        if len(rows) > count:
            self._kept = (start, rows)
            return rows[:count]
        return rows

    def frame(self, start: int) -> Any:
        """The rows from `start` on as DuckDB's own DataFrame of them; where DuckDB has none
        (a TIMETZ, a UHUGEINT: it raises), pyarrow's of DuckDB's Arrow, as before."""
        rest = self.table.slice(start)
        if self._exact is not None:  # only for those types, and a BIT (raw bytes either way)
            return rest.to_pandas()
        try:
            frame = _as_duckdb_typed(self._con, rest, self.types).df()
        except duckdb.NotImplementedException:
            return rest.to_pandas()
        except duckdb.Error as exc:
            raise from_duckdb(exc) from None
        frame.columns = self.table.column_names
        return frame

    def numpy(self, start: int) -> dict[str, Any]:
        """The rows from `start` on as DuckDB's own fetchnumpy of them, by column name."""
        rest = self.table.slice(start)
        try:
            arrays = _as_duckdb_typed(self._con, rest, self.types).fetchnumpy()
        except duckdb.Error as exc:
            raise from_duckdb(exc) from None
        return dict(zip(self.table.column_names, arrays.values()))

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection the statement ran on (its settings write the values)."""
        return self._con


def _by_pyarrow(type_: DuckDBPyType) -> str | None:
    """How pyarrow converts a column of this type as DuckDB does: "as is", "tuples" (an
    ARRAY, which DuckDB gives as tuples), or None: only DuckDB does."""
    if type_ids(type_) <= PYARROW_EXACT:
        return "as is"
    if type_.id == "array" and type_ids(type_.children[0][1]) <= PYARROW_EXACT:
        return "tuples"
    return None


def _pyarrow_rows(table: pa.Table, how: list[str | None]) -> list[tuple[Any, ...]]:
    columns = [column.to_pylist() for column in table.columns]
    for i, way in enumerate(how):
        if way == "tuples":  # written here: a few vectors cost pyarrow microseconds
            columns[i] = [None if v is None else tuple(v) for v in columns[i]]
    return list(zip(*columns)) if columns else [() for _ in range(table.num_rows)]


def _duckdb_rows(con: duckdb.DuckDBPyConnection, table: pa.Table, types: list[DuckDBPyType]
                 ) -> list[tuple[Any, ...]]:
    """DuckDB's own Python rows of Arrow it gave: it reads the Arrow back and casts each
    column to the type the statement gave where the Arrow has another (a HUGEINT's
    decimal128, a UUID's string). Columns are renamed: their names may repeat."""
    try:
        return _as_duckdb_typed(con, table, types).fetchall()
    except duckdb.Error as exc:
        raise from_duckdb(exc) from None


def _as_duckdb_typed(con: duckdb.DuckDBPyConnection, table: pa.Table,
                     types: list[DuckDBPyType]) -> duckdb.DuckDBPyRelation:
    """Arrow DuckDB gave, read back by DuckDB with each column cast to the type the statement
    gave where the Arrow has another. Columns are renamed c0, c1, ...: their names may repeat."""
    names = [f"c{i}" for i in range(table.num_columns)]
    relation = con.from_arrow(table.rename_columns(names))
    columns = [duckdb.ColumnExpression(name) if read == wanted
               else duckdb.ColumnExpression(name).cast(wanted)
               for name, read, wanted in zip(names, relation.types, types)]
    return relation.select(*columns)
