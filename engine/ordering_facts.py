"""What a search's ORDER BY and SELECT list mean beyond their text.

An index answers one order: best first, rows without a vector last, each row on its own. Three
facts of the connection can make a query that looks like it mean another: DuckDB's default
direction and NULL placement (SET default_order, SET default_null_order), and the user's
macros, one of which may hide a window or an aggregate that must see every row. They are read
from the connection and kept while the database's catalog generation holds (SET and CREATE
MACRO move it on): a search repeated asks nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb

# quarrydb's own macros (engine/database.py): none of them sees more than its row.
ENGINE_MACROS = frozenset({"similarity", "distance", "image", "audio"})


@dataclass(frozen=True)
class OrderingFacts:
    descending_by_default: bool
    null_order: str  # DuckDB's default_null_order, upper case: NULLS_LAST, NULLS_FIRST, ...
    user_macros: frozenset[str]  # lower case

    def nulls_first(self, descending: bool) -> bool:
        """Whether NULLs come first in an ORDER BY key that does not say where they go."""
        if self.null_order == "NULLS_LAST":
            return False
        if self.null_order == "NULLS_FIRST_ON_ASC_LAST_ON_DESC":
            return not descending
        if self.null_order == "NULLS_LAST_ON_ASC_FIRST_ON_DESC":
            return descending
        return True  # NULLS_FIRST, or one this does not know: the index is not used


def read(con: duckdb.DuckDBPyConnection) -> OrderingFacts:
    order, nulls = con.execute(
        "SELECT current_setting('default_order'), current_setting('default_null_order')"
    ).fetchone()
    macros = con.execute(
        "SELECT DISTINCT lower(function_name), database_name = 'temp' FROM duckdb_functions()"
        " WHERE function_type = 'macro' AND NOT internal").fetchall()
    return OrderingFacts(
        descending_by_default=str(order).upper().startswith("DESC"),
        null_order=str(nulls).upper(),
        user_macros=frozenset(name for name, temporary in macros
                              if not (temporary and name in ENGINE_MACROS)))


class KeptOrderingFacts:
    """One connection's facts, kept while the catalog generation they were read at holds."""

    def __init__(self, con: duckdb.DuckDBPyConnection, generation: Callable[[], int]) -> None:
        self._con = con
        self._generation = generation
        self._facts: OrderingFacts | None = None
        self._read_at = -1

    def now(self) -> OrderingFacts:
        generation = self._generation()
        if self._facts is None or generation != self._read_at:
            self._facts, self._read_at = read(self._con), generation
        return self._facts
