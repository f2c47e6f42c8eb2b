"""A write's target, checked before its model stages run.

DuckDB looks at the table a `CREATE TABLE ... AS` or an `INSERT ... SELECT` writes only once its
query has run, so a statement whose target is taken (or missing) would first run every model in
it, for minutes on a large table, and then fail or do nothing.
"""

from __future__ import annotations

import duckdb
from sqlglot import exp

from quarrydb.engine.errors import ProgrammingError, without_sql_shown

# Whatever a CREATE TABLE collides with, as DuckDB names it in its error. A two-part name
# `x.t` is schema x of the current database, or database x's schema main, as DuckDB reads it.
_TAKEN = """
SELECT kind FROM (
    SELECT 'Table' AS kind, database_name, schema_name, table_name AS name FROM duckdb_tables()
    UNION ALL
    SELECT 'View', database_name, schema_name, view_name FROM duckdb_views()
)
WHERE lower(name) = lower($name)
  AND ((lower(database_name) = lower($catalog) AND lower(schema_name) = lower($schema))
       OR ($two_part AND lower(database_name) = lower($schema) AND schema_name = 'main'))
"""


def create_needs_running(con: duckdb.DuckDBPyConnection, tree: exp.Expression) -> bool:
    """False for a `CREATE TABLE IF NOT EXISTS ... AS` whose table exists (DuckDB does nothing);
    DuckDB's error for a plain `CREATE TABLE ... AS` whose name is taken; True otherwise."""
    if not isinstance(tree, exp.Create) or tree.args.get("kind") != "TABLE" or tree.args.get(
            "replace"):
        return True
    table = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    if not isinstance(table, exp.Table):
        return True
    temporary = _creates_temporary(tree)
    current_catalog, current_schema = con.execute(
        "SELECT current_database(), current_schema()").fetchall()[0]
    taken = con.execute(_TAKEN, {
        "name": table.name,
        "catalog": table.catalog or ("temp" if temporary else current_catalog),
        "schema": table.db or ("main" if temporary else current_schema),
        "two_part": bool(table.db and not table.catalog),
    }).fetchall()
    if not taken:
        return True
    if tree.args.get("exists"):
        return False
    raise ProgrammingError(f'Catalog Error: {taken[0][0]} with name "{table.name}" already'
                           " exists!")


def check_insert_target(con: duckdb.DuckDBPyConnection, tree: exp.Expression,
                        values_too: bool = False) -> None:
    """Raise DuckDB's own error for an INSERT ... SELECT into a table that does not exist (an
    INSERT ... VALUES runs its models on a row or two: not worth a query each time, unless
    `values_too`, for executemany's rows all at once)."""
    if not isinstance(tree, exp.Insert) or (isinstance(tree.expression, exp.Values)
                                            and not values_too):
        return
    target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    if not isinstance(target, exp.Table):
        return
    name = exp.table_(target.name, target.db or None, target.catalog or None, quoted=True)
    try:
        con.execute(f"SELECT NULL FROM {name.sql('duckdb')} LIMIT 0").fetchall()
    except duckdb.CatalogException as exc:
        raise ProgrammingError(without_sql_shown(str(exc))) from None


def writes_database(con: duckdb.DuckDBPyConnection, tree: exp.Expression) -> bool:
    """Whether the statement writes the database itself: not a temporary table, nor a file a
    COPY ... TO writes (DuckDB allows those on a database opened read-only)."""
    if isinstance(tree, exp.Create):
        return not _creates_temporary(tree)
    if isinstance(tree, exp.Copy):
        return tree.args.get("kind") is True and not _is_temporary(con, tree.this)
    if isinstance(tree, (exp.Insert, exp.Update, exp.Delete, exp.Merge)):
        return not _is_temporary(con, tree.this)
    return False


def _is_temporary(con: duckdb.DuckDBPyConnection, target: exp.Expression | None) -> bool:
    """Whether a write's target names a temporary table (as DuckDB finds an unqualified name:
    a temporary table first)."""
    table = target.this if isinstance(target, exp.Schema) else target
    if not isinstance(table, exp.Table) or (table.catalog or "temp").lower() != "temp":
        return False
    if table.db and table.db.lower() != "main" and not (table.db.lower() == "temp"
                                                          and not table.catalog):
        return False
    return bool(con.execute("SELECT 1 FROM duckdb_tables() WHERE temporary AND lower(table_name)"
                            " = lower(?)", [table.name]).fetchall())


def _creates_temporary(create: exp.Create) -> bool:
    """CREATE TEMP[ORARY] ...: sqlglot keeps the word as a property."""
    properties = create.args.get("properties")
    return properties is not None and any(
        isinstance(p, exp.TemporaryProperty) for p in properties.expressions)
