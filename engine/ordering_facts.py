"""What a search's ORDER BY and SELECT list mean beyond their text.

An index answers one order: best first, rows without a vector last, each row on its own. Three
facts of the connection can make a query that looks like it mean another: DuckDB's default
direction and NULL placement (SET default_order, SET default_null_order), and the user's
macros, one of which may hide a window or an aggregate that must see every row. Each is read
from the connection when first asked (the macros only for a SELECT list that calls a function
neither DuckDB's parser nor quarrydb knows) and kept while the database's catalog generation
holds (SET and CREATE MACRO move it on): a search repeated asks nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb

from quarrydb.engine.database import KeptPerGeneration

# quarrydb's own macros (engine/database.py): none of them sees more than its row.
ENGINE_MACROS = frozenset({"similarity", "distance", "image", "audio"})


@dataclass(frozen=True)
class SortDefaults:
    descending: bool  # DuckDB's default_order
    null_order: str  # DuckDB's default_null_order, upper case: NULLS_LAST, NULLS_FIRST, ...

    def nulls_first(self, descending: bool) -> bool:
        """Whether NULLs come first in an ORDER BY key that does not say where they go."""
        if self.null_order == "NULLS_LAST":
            return False
        if self.null_order == "NULLS_FIRST_ON_ASC_LAST_ON_DESC":
            return not descending
        if self.null_order == "NULLS_LAST_ON_ASC_FIRST_ON_DESC":
            return descending
        return True  # NULLS_FIRST, or one this does not know: the index is not used


def sort_defaults(con: duckdb.DuckDBPyConnection) -> SortDefaults:
    order, nulls = con.execute(
        "SELECT current_setting('default_order'), current_setting('default_null_order')"
    ).fetchall()[0]  # (fetchone leaves the result open, which blocks the connection)
    return SortDefaults(str(order).upper().startswith("DESC"), str(nulls).upper())


def user_macros(con: duckdb.DuckDBPyConnection) -> frozenset[str]:
    """The names of the user's scalar macros, in lower case (about 30 ms: DuckDB lists every
    function to find them)."""
    macros = con.execute(
        "SELECT DISTINCT lower(function_name), database_name = 'temp' FROM duckdb_functions()"
        " WHERE function_type = 'macro' AND NOT internal").fetchall()
    return frozenset(name for name, temporary in macros
                     if not (temporary and name in ENGINE_MACROS))


class OrderingFacts:
    """One connection's facts, each read when first asked and kept while the catalog
    generation it was read at holds."""

    def __init__(self, con: duckdb.DuckDBPyConnection, generation: Callable[[], int]) -> None:
        self._con = con
        self._kept = KeptPerGeneration(generation)

    def sort_defaults(self) -> SortDefaults:
        return self._kept.get("sort", lambda: sort_defaults(self._con))

    def user_macros(self) -> frozenset[str]:
        return self._kept.get("macros", lambda: user_macros(self._con))
