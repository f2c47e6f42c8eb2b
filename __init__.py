"""quarrydb: SQL for unstructured data, with model functions that run as batched kernels.

    import quarrydb
    con = quarrydb.connect()            # or quarrydb.connect("notes.quarry") to keep it
    con.execute("SELECT classify('the app crashes', ['bug', 'praise'])").fetchall()
"""

from quarrydb.connectors.dbapi import (
    Connection,
    Cursor,
    QueryResult,
    apilevel,
    connect,
    paramstyle,
    threadsafety,
)
from quarrydb.engine.errors import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
)

__version__ = "0.1.0"

__all__ = [
    "Connection",
    "Cursor",
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "QueryResult",
    "Warning",
    "apilevel",
    "connect",
    "paramstyle",
    "threadsafety",
]
