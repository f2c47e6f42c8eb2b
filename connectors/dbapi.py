"""The Python DB-API 2.0 door: `quarrydb.connect()` and its cursors, shaped like DuckDB's."""

from __future__ import annotations

import importlib.util
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from duckdb.sqltypes import DuckDBPyType

from quarrydb.connectors.python_tables import caller_frame, frame_tables
from quarrydb.connectors.table_format import MAX_ROWS, format_table
from quarrydb.engine import statements
from quarrydb.engine.database import in_use_or_unopenable, open_database
from quarrydb.engine.errors import (
    InterfaceError,
    NotSupportedError,
    ProgrammingError,
    from_duckdb,
)
from quarrydb.engine.parameters import plain_value
from quarrydb.engine.result_types import type_ids
from quarrydb.engine.session import COUNTED_KINDS, Params, Result, Session

apilevel = "2.0"
threadsafety = 1  # share the module, not connections
paramstyle = "qmark"

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


class _Fetching:
    """The fetch methods of a result, in DB-API and DuckDB's shapes: Python rows, Arrow,
    pandas, NumPy, polars. Each reads on from what was fetched before, as DuckDB's do."""

    arraysize = 1
    _rows: _PythonRows | None
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


class QueryResult(_Fetching):
    """What con.sql(query) returns: the statement's whole result, run at once (eager; DuckDB's
    relations are lazy, and quarrydb builds no relation algebra on them). Fetch it as from a
    cursor, or print it with show()."""

    def __init__(self, result: Result, rows: _PythonRows) -> None:
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


class Connection:
    """An open database. Use as a context manager to close it at the end of a block."""

    def __init__(self, path: str | Path = ":memory:", read_only: bool = False,
                 config: dict[str, Any] | None = None) -> None:
        self._database = open_database(path, read_only, config)
        # A connection dropped without close() lets the database go when it is collected, as
        # DuckDB's does: the file's lock must not outlive every reference to it.
        self._release = weakref.finalize(self, self._database.close)
        self._cursors: list[Cursor] = []
        self._closed = False
        self._default: Cursor | None = None

    @property
    def path(self) -> str:
        return self._database.path

    def cursor(self) -> Cursor:
        self._check_open()
        cursor = Cursor(self)
        self._cursors.append(cursor)
        return cursor

    def execute(self, sql: str, params: Params = None) -> Cursor:
        """A shortcut like DuckDB's: run on the connection's own cursor, and return it. Every
        `con.execute` shares that cursor's session, as DuckDB's run on the connection itself:
        its settings, temporary tables and transaction (each new cursor has its own)."""
        return self._own_cursor().execute(sql, params)

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> Cursor:
        return self._own_cursor().executemany(sql, seq_of_params)

    # As on a DuckDB connection: the last con.execute's answer, read from the connection.
    def fetchone(self) -> tuple[Any, ...] | None:
        return self._own_cursor().fetchone()

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        return self._own_cursor().fetchmany(size)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._own_cursor().fetchall()

    def fetch_arrow_table(self) -> pa.Table:
        return self._own_cursor().fetch_arrow_table()

    def fetchdf(self) -> Any:
        return self._own_cursor().fetchdf()

    def df(self) -> Any:
        return self._own_cursor().df()

    def fetch_df(self) -> Any:
        return self._own_cursor().fetch_df()

    def fetchnumpy(self) -> dict[str, Any]:
        return self._own_cursor().fetchnumpy()

    def arrow(self) -> pa.Table:
        return self._own_cursor().arrow()

    def to_arrow_table(self) -> pa.Table:
        return self._own_cursor().to_arrow_table()

    def pl(self) -> Any:
        return self._own_cursor().pl()

    @property
    def description(self) -> list[tuple[Any, ...]] | None:
        return self._own_cursor().description

    def sql(self, query: str, params: Params = None) -> QueryResult | None:
        """Run `query` on the connection's own cursor, as DuckDB's con.sql runs on the
        connection, and return its whole result (None for a statement that returns no
        rows: CREATE, SET, BEGIN ...). The result is eager: the statement has run when this
        returns, and later statements leave it as it is; it is no DuckDB relation to build
        more SQL on (write that SQL, or query the result's DataFrame or Arrow by name)."""
        cursor = self._own_cursor().execute(query, params)
        result, rows = cursor._result, cursor._rows
        if result is None or rows is None or _answers_a_count(query):
            return None
        return QueryResult(result, rows)

    query = sql  # DuckDB's other name

    def begin(self) -> Connection:
        """Open a transaction on the connection's own cursor, as DuckDB's con.begin()."""
        self._own_cursor().execute("BEGIN TRANSACTION")
        return self

    def interrupt(self) -> None:
        """Interrupt the DuckDB query running on any of this connection's cursors, as DuckDB's
        con.interrupt() (it raises in the thread that runs it). A model stage that is
        computing a batch at that moment is not stopped: Ctrl-C (KeyboardInterrupt) is."""
        for cursor in self._cursors:
            if cursor._session is not None:
                cursor._session.con.interrupt()

    def register(self, name: str, data: Any) -> Connection:
        """Make a DataFrame or Arrow table queryable as `name` by con.execute (as DuckDB's; a
        RecordBatchReader is read into a table, see Cursor.register)."""
        self._own_cursor().register(name, data)
        return self

    def unregister(self, name: str) -> Connection:
        self._own_cursor().unregister(name)
        return self

    def _own_cursor(self) -> Cursor:
        if self._default is None or self._default._session is None:
            self._default = self.cursor()
        return self._default

    def commit(self) -> None:
        """Statements commit as they run (autocommit, as DuckDB); an explicit BEGIN is committed."""
        self._check_open()
        self._end_transaction("COMMIT")

    def rollback(self) -> None:
        """Roll back the transaction open on each cursor. With none open anywhere, DuckDB's
        TransactionException ('cannot rollback - no transaction is active'), as DuckDB's."""
        self._check_open()
        if not self._end_transaction("ROLLBACK"):
            try:
                self._own_cursor()._live_session().con.execute("ROLLBACK")
            except duckdb.Error as exc:
                raise from_duckdb(exc) from None

    def _end_transaction(self, command: str) -> bool:
        """End each cursor's open transaction; whether any cursor had one."""
        ended = False
        for cursor in self._cursors:
            if cursor._session is not None and cursor._session.con is not None:
                try:
                    cursor._session.end_transaction(command)
                    ended = True
                except duckdb.Error:  # no transaction open on this cursor: nothing to end
                    pass
        return ended

    def close(self) -> None:
        if self._closed:
            return
        for cursor in list(self._cursors):
            cursor.close()
        self._release()
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise InterfaceError("the connection is closed")

    def _new_session(self) -> Session:
        """A session of its own; making it writes the engine's tables, the first point where
        another process holding the database shows (DuckDB lets one process write it)."""
        try:
            return Session(self._database)
        except duckdb.Error as exc:
            raise in_use_or_unopenable(self.path, exc) from None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Cursor(_Fetching):
    """Runs statements and holds the last result as Arrow, fetched in any shape."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._session: Session | None = connection._new_session()
        self._result: Result | None = None
        self._rows: _PythonRows | None = None  # the last result's, as DuckDB's fetch gives
        self._position = 0

    # --- running -------------------------------------------------------------------------------

    def execute(self, sql: str, params: Params = None) -> Cursor:
        """Run one statement (or several, without parameters). A table the statement names
        that only a DataFrame or Arrow variable of the calling code holds is read from it, as
        DuckDB's replacement scan reads it (see python_tables)."""
        session = self._live_session()
        params = _checked_params(params)
        self._result = self._rows = None
        with frame_tables(session.con, sql, caller_frame(__name__)):
            self._result = session.execute(sql, params)
        if self._result.table is not None:
            self._rows = _PythonRows(self._result, session.con)
        self._position = 0
        return self

    def register(self, name: str, data: Any) -> Cursor:
        """Make a pandas DataFrame or Arrow table queryable as `name` on this cursor (as DuckDB's
        `register`); it stays until `unregister(name)` or the cursor closes. A pyarrow
        RecordBatchReader, which can be read once, is read into an Arrow table here (in
        memory): a statement with model calls reads its tables twice (its stages' inputs,
        then the final query), and every later statement may read it again."""
        if isinstance(data, pa.RecordBatchReader):
            data = data.read_all()
        session = self._live_session()
        session.database.catalog_generation += 1  # `name` may shadow a table (see Session)
        try:
            session.con.register(name, data)
        except Exception as exc:  # DuckDB's message says what it could not register
            raise ProgrammingError(f"cannot register {name!r}: {exc}") from None
        return self

    def unregister(self, name: str) -> Cursor:
        session = self._live_session()
        session.con.unregister(name)
        session.database.catalog_generation += 1  # `name` may lead to a table again
        return self

    def set_progress(self, callback: Callable[[str, int, int], None] | None) -> None:
        """Call `callback(stage, done, total)` as model stages advance (None to stop)."""
        self._live_session().progress = callback

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> Cursor:
        """Run `sql` once per item of `seq_of_params`, each a sequence or a mapping."""
        if seq_of_params is None or not isinstance(seq_of_params, Iterable):
            raise ProgrammingError(
                "executemany needs a sequence of parameter sets (each a sequence or a mapping),"
                f" not {type(seq_of_params).__name__}"
            )
        param_sets = list(seq_of_params)
        self._live_session().run_calls_ahead(sql, _well_formed(param_sets))
        total, warnings = 0, []
        for params in param_sets:
            self.execute(sql, params)
            total += max(self.rowcount, 0)
            warnings += self.warnings
        if self._result is not None:  # the count, and warnings, of every row's statement
            self._result.rowcount = total
            self._result.warnings = warnings
        return self

    # --- what the last statement returned ------------------------------------------------------

    @property
    def description(self) -> list[tuple[Any, ...]] | None:
        """As DuckDB's: each column's name and DuckDB type, then five Nones."""
        if self._rows is None:
            return None
        names = self._rows.table.column_names
        return [(name, type_, None, None, None, None, None)
                for name, type_ in zip(names, self._rows.types)]

    @property
    def rowcount(self) -> int:
        return self._result.rowcount if self._result else -1

    @property
    def stats(self) -> dict[str, Any]:
        """Model work of the last statement: model_inputs, cache_hits and per-stage figures."""
        return self._result.stats if self._result else {}

    @property
    def warnings(self) -> list[str]:
        return self._result.warnings if self._result else []

    def arrow(self) -> pa.Table:
        """The rest of the result as an Arrow table, as DuckDB's result.arrow() gave it."""
        return self.fetch_arrow_table()

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while (row := self.fetchone()) is not None:
            yield row

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        self._result = self._rows = None

    def setinputsizes(self, sizes: Any) -> None:  # PEP 249: may do nothing
        pass

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        pass

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _live_session(self) -> Session:
        self.connection._check_open()
        if self._session is None:
            raise InterfaceError("the cursor is closed")
        return self._session

    def _fetchable(self) -> pa.Table | None:
        self._live_session()
        if self._result is None:
            raise ProgrammingError("no result to fetch: no statement has run on this cursor")
        return self._result.table


class _PythonRows:
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


def _answers_a_count(sql: str) -> bool:
    """Whether the (last) statement is a write whose answer is DuckDB's count of rows written,
    which con.sql gives as no result."""
    last = statements.split(sql)[-1]
    return last.kind in COUNTED_KINDS and not statements.returns_rows(last.text)


def _well_formed(param_sets: list[Any]) -> list[Params]:
    """The parameter sets that are sequences or mappings (a bad one is reported at its row)."""
    checked = []
    for params in param_sets:
        try:
            checked.append(_checked_params(params))
        except ProgrammingError:
            pass
    return checked


def _checked_params(params: Any) -> Params:
    """Parameters as PEP 249 has them: None, a sequence or a mapping. A NumPy array (or a
    pandas Series) becomes a list, as the engine tests `if params`; a str is refused, since
    its characters would be taken one parameter each."""
    if params is None:
        return params
    if isinstance(params, Mapping):
        return {key: plain_value(value) for key, value in params.items()}
    if isinstance(params, Sequence) and not isinstance(params, (str, bytes, bytearray)):
        return [plain_value(value) for value in params]
    if getattr(params, "ndim", 0) >= 1 and hasattr(params, "tolist"):
        return list(params.tolist())
    raise ProgrammingError(
        "parameters must be a sequence (list, tuple) or a mapping (dict),"
        f" not {type(params).__name__}: for one value write [value]"
    )


def connect(database: str | Path = ":memory:", read_only: bool = False,
            config: dict[str, Any] | None = None, *, path: str | Path | None = None
            ) -> Connection:
    """Open a database, with duckdb.connect's arguments: `:memory:` (the default, or "") keeps
    nothing, `:memory:<name>` is kept in memory and shared by this process's connections of
    that name, as in DuckDB; any other path is a database directory (`path=` names it too).
    `read_only`, as DuckDB's: nothing is written (writes are refused, model results are not
    cached, indexes are searched as saved), and other processes may read it too. `config`:
    DuckDB's settings to open it with, e.g. {'threads': 4} (a setting DuckDB does not know is
    a ProgrammingError).
    Raises OperationalError when it cannot be opened (a file in the way, in use by another
    process, ...) and ProgrammingError for a path that is not a str or Path."""
    if path is not None:
        if database != ":memory:":
            raise ProgrammingError("give the database once: connect(database) or"
                                   " connect(path=...), not both")
        database = path
    if isinstance(config, dict) and str(config.get("access_mode", "")).lower() == "read_only":
        config = {k: v for k, v in config.items() if k != "access_mode"}
        read_only = True  # as read_only=True: DuckDB's setting of the same meaning
    return Connection(database, read_only, config)
