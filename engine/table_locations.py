"""Where a table's name leads, as DuckDB resolves it now.

A vector index belongs to one table, which statements name as they like (`items`,
`main.items`, `"Items"`) from whatever database and schema are in use (USE, SET schema,
SET search_path), and a temporary table shadows a table of its name. DuckDB's binder is asked
where a name leads (the table its EXPLAIN scans) rather than its search rules written out here
again. An answer is kept until a statement that may change it (see
Database.catalog_generation): a search repeated asks nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import duckdb
from sqlglot import exp

from quarrydb.engine.database import KeptPerGeneration
from quarrydb.engine.sqltree import DIALECT

Location = tuple[str, str, str]  # (database, schema, table), in lower case


def locate(con: duckdb.DuckDBPyConnection, table_sql: str) -> Location | None:
    """The base table `table_sql` names on `con` now; None where it names none (a view, a
    table function, nothing)."""
    try:  # a view has no rowid: DuckDB's binder refuses it, as a missing table
        plan = con.execute(f"EXPLAIN (FORMAT json) SELECT rowid FROM {table_sql}").fetchall()
    except duckdb.Error:
        return None
    for node in _nodes(json.loads(plan[0][1])):
        scanned = (node.get("extra_info") or {}).get("Table")
        if isinstance(scanned, str):
            if _may_name_a_view(con, exp.to_table(table_sql, dialect=DIALECT)):
                return None
            table = exp.to_table(scanned, dialect=DIALECT)
            return table.catalog.lower(), table.db.lower(), table.name.lower()
    return None


def _may_name_a_view(con: duckdb.DuckDBPyConnection, written: exp.Table) -> bool:
    """Whether a view has the name, where the name's qualifiers allow one: EXPLAIN shows the
    table a view reads, and a view with a column named rowid passes for that table."""
    views = con.execute("SELECT database_name, schema_name FROM duckdb_views() WHERE NOT"
                        " internal AND lower(view_name) = lower(?)", [written.name]).fetchall()
    qualifiers = {part.lower() for part in (written.catalog, written.db) if part}
    return any(not qualifiers or qualifiers & {database.lower(), schema.lower()}
               for database, schema in views)


def sql_name(location: Location) -> str:
    """The table in SQL, qualified in full: it reads the same table whatever is in use."""
    database, schema, name = location
    return exp.table_(name, db=schema, catalog=database, quoted=True).sql(dialect=DIALECT)


def written_name(table: exp.Table) -> str:
    """The name as a statement wrote it, without its alias or sample."""
    return exp.table_(table.name, db=table.db or None, catalog=table.catalog or None,
                      quoted=True).sql(dialect=DIALECT)


class TableLocations:
    """One connection's answers, kept while the catalog generation they were read at holds."""

    def __init__(self, con: duckdb.DuckDBPyConnection, generation: Callable[[], int]
                 ) -> None:
        self._con = con
        self._kept = KeptPerGeneration(generation)

    def of(self, table: exp.Table | str) -> Location | None:
        text = table if isinstance(table, str) else written_name(table)
        return self._kept.get(text, lambda: locate(self._con, text))


def _nodes(plan: Any) -> Iterator[dict]:
    """Every operator of an EXPLAIN (FORMAT json) plan, depth first."""
    for node in plan if isinstance(plan, list) else [plan]:
        if isinstance(node, dict):
            yield node
            yield from _nodes(node.get("children") or [])
