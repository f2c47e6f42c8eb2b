"""The Python DB-API 2.0 door: `quarrydb.connect()` and its cursors, shaped like DuckDB's."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from quarrydb.connectors.fetching import Fetching, PythonRows, QueryResult
from quarrydb.connectors.python_tables import caller_frame, frame_tables
from quarrydb.engine import statements
from quarrydb.engine.database import in_use_or_unopenable, open_database
from quarrydb.engine.errors import InterfaceError, ProgrammingError, from_duckdb
from quarrydb.engine.parameters import plain_value
from quarrydb.engine.session import COUNTED_KINDS, Params, Result, Session

apilevel = "2.0"
threadsafety = 1  # share the module, not connections
paramstyle = "qmark"


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


class Cursor(Fetching):
    """Runs statements and holds the last result as Arrow, fetched in any shape."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._session: Session | None = connection._new_session()
        self._result: Result | None = None
        self._rows: PythonRows | None = None  # the last result's, as DuckDB's fetch gives
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
            self._rows = PythonRows(self._result, session.con)
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
        session.database.names_may_lead_elsewhere()  # `name` may shadow a table
        try:
            session.con.register(name, data)
        except Exception as exc:  # DuckDB's message says what it could not register
            raise ProgrammingError(f"cannot register {name!r}: {exc}") from None
        return self

    def unregister(self, name: str) -> Cursor:
        session = self._live_session()
        session.con.unregister(name)
        session.database.names_may_lead_elsewhere()  # `name` may lead to a table again
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
            try:  # DuckDB refuses while another thread runs a statement on it
                self._session.close()
            except duckdb.Error as exc:
                raise from_duckdb(exc) from None
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
