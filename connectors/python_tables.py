"""Python variables a statement names as tables: DuckDB's replacement scan, for quarrydb.

DuckDB reads `SELECT * FROM df` from a pandas DataFrame (or Arrow table, ...) named `df` in the
frame that called it, when no table or view has that name. Through quarrydb the frame calling
DuckDB is the engine's, so DuckDB's own scan is turned off on quarrydb's connections (an
engine variable must never answer for a user's table, see Database.new_connection) and this
module does it instead: the variables the statement names, looked up in the frame that called
the DB-API (its locals, then its globals, as DuckDB looks), are registered on the cursor's
DuckDB connection while the statement runs — model stages included — and unregistered after.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
import sys
from collections.abc import Iterator, Set
from types import CodeType, FrameType
from typing import Any

import duckdb
import pyarrow as pa

from quarrydb.engine import statements

# Tables DuckDB scans beside those with an Arrow stream (pyarrow's, polars', recent pandas'):
# (module, class name).
_TABLE_CLASSES = frozenset({
    ("pandas", "DataFrame"), ("pyarrow", "FileSystemDataset"), ("pyarrow", "UnionDataset"),
    ("pyarrow", "InMemoryDataset"), ("pyarrow", "Scanner"), ("polars", "LazyFrame"),
})


def caller_frame(skip: str) -> FrameType | None:
    """The innermost frame outside module `skip` (the DB-API): the user's, where DuckDB would
    look for a variable."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == skip:
        frame = frame.f_back
    return frame


@contextlib.contextmanager
def frame_tables(con: duckdb.DuckDBPyConnection, sql: Any, frame: FrameType | None
                 ) -> Iterator[None]:
    """While open, the tables `sql` names that only a variable of `frame` holds are views of
    those variables on `con`."""
    registered = [name for name, data in _named_tables(sql, frame).items()
                  if _register_if_missing(con, name, data)]
    try:
        yield
    finally:
        for name in registered:
            with contextlib.suppress(duckdb.Error):
                con.unregister(name)


def _named_tables(sql: Any, frame: FrameType | None) -> dict[str, Any]:
    """The words of `sql` that name a table-like variable of `frame` (locals first, as
    DuckDB looks). None for a text that creates, drops or alters: a variable registered
    before it runs would clash with a table it creates (or win over it, in later
    statements of the text)."""
    if frame is None or not isinstance(sql, str):
        return {}
    words = statements.words(sql)
    in_locals = words & _local_names(frame)
    in_globals = words & frame.f_globals.keys()
    if not (in_locals or in_globals):  # most statements
        return {}
    scopes = (frame.f_locals, frame.f_globals) if in_locals else (frame.f_globals,)
    found = {}
    for word in in_locals | in_globals:
        for scope in scopes:
            data = scope.get(word)
            if data is not None and _is_table_like(data):
                found[word] = data
                break
    if found and _CHANGES_CATALOG.search(statements.code_only(sql)):  # last: about 0.2 ms
        return {}  # on a search's 4 KB of vector
    return found


_NAMED_ANYWHERE = """
SELECT 1 FROM duckdb_tables() WHERE lower(table_name) = lower(?)
UNION ALL SELECT 1 FROM duckdb_views() WHERE lower(view_name) = lower(?)
"""
_CHANGES_CATALOG = re.compile(r"\b(?:CREATE|DROP|ALTER)\b", re.IGNORECASE)


def _local_names(frame: FrameType) -> Set[str]:
    """The names of the frame's locals. A function's are read from its code: before Python
    3.13 reading its locals keeps a copy in the frame, which would keep the caller's objects
    (a connection `del`eted since, and its database's lock) alive as long as the frame; they
    are read only where the statement names one."""
    code = frame.f_code
    if code.co_flags & inspect.CO_OPTIMIZED:
        return _names_of(code)
    return frame.f_locals.keys()  # a module's or a class body's: a dict


@functools.lru_cache(maxsize=256)
def _names_of(code: CodeType) -> frozenset[str]:
    return frozenset(code.co_varnames + code.co_cellvars + code.co_freevars)


def _is_table_like(data: Any) -> bool:
    kind = type(data)
    return (hasattr(kind, "__arrow_c_stream__") or isinstance(data, duckdb.DuckDBPyRelation)
            or (kind.__module__.partition(".")[0], kind.__name__) in _TABLE_CLASSES)


def _register_if_missing(con: duckdb.DuckDBPyConnection, name: str, data: Any) -> bool:
    """Register `data` as `name` unless a table or view of that name exists in any schema
    (DuckDB's catalog comes before its scan of variables), or DuckDB cannot read it. Asked of
    the catalog's lists, not by reading the name: a failed read would abort the user's open
    transaction."""
    if con.execute(_NAMED_ANYWHERE, [name, name]).fetchall():
        return False
    if isinstance(data, pa.RecordBatchReader):  # read once here: a model call reads it twice
        data = data.read_all()
    try:
        con.register(name, data)
    except (duckdb.Error, TypeError, ValueError, pa.ArrowException):
        return False
    return True
