"""Print a result as DuckDB's own CLI prints it: DuckDB's box renderer draws the table, so each
value reads as DuckDB writes it (dates out of Python's range, TIME 24:00:00, BIT, INTERVAL,
MAP, ...), wide cells are cut short and a long result shows its head and tail."""

from __future__ import annotations

import contextlib
import functools
import io
import re
from collections.abc import Sequence

import duckdb
import pyarrow as pa
from duckdb.sqltypes import DuckDBPyType

MAX_ROWS = 40  # as DuckDB's CLI (.maxrows)


def format_table(table: pa.Table, max_rows: int = MAX_ROWS, *,
                 types: Sequence[DuckDBPyType] | None = None,
                 con: duckdb.DuckDBPyConnection | None = None,
                 max_width: int | None = None) -> str:
    """A result DuckDB gave as Arrow, drawn by DuckDB's box renderer.

    `types`: the DuckDB types of the columns where the Arrow has others (a HUGEINT's
    decimal128, a UUID's string): the values are cast back to them. `con`: the connection
    whose settings (TimeZone, ...) the values are written under; by default one of its own.
    Only the rows shown are read (the first and last `max_rows`), however long the result.
    EXPLAIN output is text meant to be read whole, so it is printed as it is."""
    names = table.column_names
    if names == ["explain_key", "explain_value"]:
        return "\n\n".join(f"{k}\n{v}" for k, v in zip(*(c.to_pylist() for c in table.columns)))
    total = table.num_rows
    shown = table
    if total > 2 * max_rows:  # DuckDB's renderer draws at most the head and tail of these
        shown = pa.concat_tables([table.slice(0, max_rows), table.slice(total - max_rows)])
    # One chunk: DuckDB reads it in order, whatever preserve_insertion_order says.
    relation = _as_duckdb_typed(con or _own_connection(), shown.combine_chunks(), types)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # show() prints the box with print()
        relation.show(max_rows=max_rows, max_width=max_width)
    box = printed.getvalue().rstrip("\n")
    if shown.num_rows < total:
        box = _with_row_count(box, shown.num_rows, total)
    return box


def _as_duckdb_typed(con: duckdb.DuckDBPyConnection, table: pa.Table,
                     types: Sequence[DuckDBPyType] | None) -> duckdb.DuckDBPyRelation:
    """The Arrow read by DuckDB, each column cast to its DuckDB type where the Arrow has
    another, under its own name (names may repeat, so they are set after reading)."""
    keys = [f"c{i}" for i in range(table.num_columns)]
    relation = con.from_arrow(table.rename_columns(keys))
    wanted = list(types) if types is not None else relation.types
    columns = [duckdb.ColumnExpression(key) if read == want
               else duckdb.ColumnExpression(key).cast(want)
               for key, read, want in zip(keys, relation.types, wanted)]
    return relation.select(*(column.alias(name)
                             for column, name in zip(columns, table.column_names)))


def _with_row_count(box: str, drawn: int, total: int) -> str:
    """The box DuckDB drew for the head and tail of a result, its footer counting all the
    result's rows (as DuckDB's CLI does) rather than those it was given."""
    lines = box.split("\n")
    closing = max(i for i, line in enumerate(lines) if line.startswith("└"))
    count = f"{total} rows"
    for i in range(closing + 1, len(lines)):
        line = lines[i]
        found = re.search(rf"\b{drawn} rows\b( *)", line)
        if not found:
            continue
        if not line[found.end():]:  # the count alone on its line, centred under the box
            lines[i] = count.center(len(line)) if len(count) + 4 <= len(line) else f"  {count}"
            break
        spaces = found.group(1)  # the gap before the column count
        extra = len(count) - len(f"{drawn} rows")
        if len(spaces) >= extra + 2:  # the line as wide as the box, where there is room
            spaces = spaces[extra:]
        lines[i] = line[:found.start()] + count + spaces + line[found.end():]
        break
    return "\n".join(lines)


@functools.cache
def _own_connection() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()
