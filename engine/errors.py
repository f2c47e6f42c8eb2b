"""The DB-API 2.0 exception hierarchy, raised by every part of quarrydb.

They live in the engine (not in a connector) because the engine is where problems are found;
the connectors re-export them so a user catches `quarrydb.ProgrammingError`.
"""

from __future__ import annotations

from typing import Any

import duckdb


class Warning(Exception):  # noqa: A001 - the name PEP 249 asks for
    """An important warning, such as a media value that could not be decoded."""


class Error(Exception):
    """Base of every quarrydb error."""


class InterfaceError(Error):
    """Misuse of the connection or cursor (e.g. using a closed cursor)."""


class DatabaseError(Error):
    """A problem in the database itself."""


class DataError(DatabaseError):
    """A value that cannot be processed: bad media, out of range."""


class OperationalError(DatabaseError):
    """A problem running the statement that is not the user's SQL: a model that fails to load."""


class IntegrityError(DatabaseError):
    """A constraint was violated."""


class InternalError(DatabaseError):
    """quarrydb's own bug: please report it."""


class ProgrammingError(DatabaseError):
    """A mistake in the SQL: malformed text, unknown function or model, wrong arguments."""


class NotSupportedError(DatabaseError):
    """A feature that quarrydb does not offer."""


_BY_NAME = {
    cls.__name__: cls
    for cls in (
        ProgrammingError,
        IntegrityError,
        DataError,
        OperationalError,
        NotSupportedError,
        InternalError,
        DatabaseError,
        InterfaceError,
    )
}


def from_duckdb(exc: Exception) -> Error:
    """The quarrydb error of the same DB-API class as a DuckDB error, with DuckDB's message."""
    for base in type(exc).__mro__:
        if base.__name__ in _BY_NAME:
            return _BY_NAME[base.__name__](str(exc))
    return DatabaseError(str(exc))


def without_sql_shown(message: str) -> str:
    """DuckDB's message less the line of SQL it quotes at the end (`LINE 1: ...`): where the
    engine wrote that SQL (a stage's lookups, a probe), it is not what the user wrote."""
    return message.split("\n\nLINE ")[0]


def positioned(con: duckdb.DuckDBPyConnection, text: str, kind: str, params: Any,
               exc: duckdb.Error) -> Error:
    """The quarrydb error of DuckDB's error binding a statement, with DuckDB's `LINE 1: ...`
    and caret where it has them. The relation API (con.sql) leaves them out of an error in
    binding a query, which it binds without running: that query is bound again by
    con.execute, which gives them (it fails there again, with nothing run). A statement of
    another kind, or with parameters, con.sql ran and reported in full."""
    if kind != "SELECT" or params or "\n\nLINE " in str(exc):
        return from_duckdb(exc)
    try:
        con.execute(text)
    except duckdb.Error as again:
        if type(again) is type(exc):
            return from_duckdb(again)
    return from_duckdb(exc)
