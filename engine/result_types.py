"""DuckDB's column types, where its default Arrow of them loses values, and the lossless way
round: what the DB-API needs to give each value as DuckDB's own fetch does."""

from __future__ import annotations

import functools
from collections.abc import Callable

import duckdb
import pyarrow as pa
from duckdb.sqltypes import DuckDBPyType

# DuckDB types whose values its default Arrow loses: TIMETZ its offset; BIT is its inner
# bytes; UHUGEINT is a decimal128(38, 0), wrong above 2**127.
ARROW_LOSES = frozenset({"time with time zone", "bit", "uhugeint"})
NESTED_TYPES = frozenset({"list", "array", "struct", "map", "union"})


def arrow_loses(types: list[DuckDBPyType]) -> bool:
    """Whether DuckDB's default Arrow of columns of these types loses values."""
    return any(type_ids(t) & ARROW_LOSES for t in types)


@functools.lru_cache(maxsize=4096)
def type_ids(type_: DuckDBPyType) -> frozenset[str]:
    """The ids of a DuckDB type and of the types nested in it (a LIST's child, a STRUCT's
    fields, ...): how it converts to Arrow and to Python depends on all of them."""
    ids = {type_.id}
    if type_.id in NESTED_TYPES:
        for _, child in type_.children:
            if isinstance(child, DuckDBPyType):  # an ARRAY's size is an int
                ids |= type_ids(child)
    return frozenset(ids)


def lossless_arrow(con: duckdb.DuckDBPyConnection, produce: Callable[[], pa.Table]
                   ) -> pa.Table:
    """`produce`'s Arrow with DuckDB's arrow_lossless_conversion on for this connection
    alone: SET SESSION (a plain SET is global, and other cursors would get it meanwhile)."""
    if con.sql("SELECT current_setting('arrow_lossless_conversion')").fetchall()[0][0]:
        return produce()  # set by the user: DuckDB's Arrow is lossless already
    con.execute("SET SESSION arrow_lossless_conversion = true")
    try:
        return produce()
    finally:
        con.execute("RESET SESSION arrow_lossless_conversion")


def plain_arrow(con: duckdb.DuckDBPyConnection, exact: pa.Table) -> pa.Table:
    """DuckDB's default Arrow of rows it gave as lossless Arrow: it reads its own lossless
    types back exactly, then writes them as it would have (column names kept: it would make
    repeated ones unique)."""
    return con.from_arrow(exact).to_arrow_table().rename_columns(exact.column_names)
