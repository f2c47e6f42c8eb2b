"""The SQL around an index search: the probe vector read from the statement's text, the
statement parsed and matched to its index once, and the search restricted to its candidate
rows, printed once per statement text.

A 1M-row HNSW search takes about 2 ms, DuckDB fetching its k rows about 2 ms: the Python
around them has to stay well under a millisecond, so neither the probe nor the statement is
printed from a sqlglot tree on every search.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sqlglot import exp

from quarrydb.engine import index_scan, statements
from quarrydb.engine.sqltree import DIALECT, set_aside_literal, vectors_put_back

_VECTOR_TEXT = re.compile(r"^\s*\[([^\[\]]*)\]\s*$")
_FLOAT_TYPES = {exp.DataType.Type.FLOAT, exp.DataType.Type.DOUBLE}
_CANDIDATES = "__quarry_candidate_rows__"  # stands in for the candidates' row ids


def literal_vector(probe: exp.Expression) -> np.ndarray | None:
    """A vector written out in the SQL ([0.1, 0.2]::FLOAT[2]) read without a trip to DuckDB."""
    node = probe
    while isinstance(node, exp.Cast):
        if not _is_float_array(node.to):
            return None  # e.g. cast to INTEGER[]: DuckDB's value, not the digits written
        node = node.this
    numbers = set_aside_literal(node)  # "[...]" of numbers alone: no need to match it again
    if numbers is None and isinstance(node, exp.Literal) and node.is_string and node is not probe:
        numbers = node.this  # '[0.1, 0.2]'::DOUBLE[] (a bound parameter, see parameters.py)
    if numbers is not None:
        numbers = numbers.strip()[1:-1]
    else:
        match = _VECTOR_TEXT.match(node.sql(dialect=DIALECT) if isinstance(node, exp.Array)
                                   else "")
        if not match:
            return None
        numbers = match.group(1)
    try:  # each number read as a double, then made a float: as DuckDB reads it
        return np.array([float(x) for x in numbers.split(",")], dtype=np.float32)
    except ValueError:
        return None


def _is_float_array(to: exp.DataType) -> bool:
    """FLOAT[], REAL[n], DOUBLE[n] ... (read from the tree: printing it costs more)."""
    return (to.this == exp.DataType.Type.ARRAY and len(to.expressions) == 1
            and to.expressions[0].this in _FLOAT_TYPES)


# What a kept search was matched against: the catalog's list of indexes (replaced, never
# changed, when an index changes), the names of the model functions, and the catalog
# generation (where the table's name leads: see table_locations).
Context = tuple[object, frozenset[str], int]


@dataclass(frozen=True)
class KeptSearch:
    context: Context
    tree: exp.Expression  # never changed: Session._run_index_search copies it to change it
    query: index_scan.IndexQuery  # never run: each search runs a copy of it


class KeptSearches:
    """Searches by statement text: a search repeated with other vectors (set aside from the
    text) is parsed and matched to its index once, not every time (about 0.2-0.4 ms)."""

    def __init__(self, context: Callable[[], Context]) -> None:
        self._context = context
        self._kept: dict[str, KeptSearch] = {}

    def get(self, text: str) -> tuple[exp.Expression, index_scan.IndexQuery] | None:
        """The kept parse (not to be changed) and a fresh copy of the index query, while the
        indexes and functions are the same."""
        kept = self._kept.get(text)
        if kept is None or not _same_context(kept.context, self._context()):
            return None
        return kept.tree, dataclasses.replace(kept.query)

    def keep(self, text: str, tree: exp.Expression, query: index_scan.IndexQuery) -> None:
        """Keep `tree` (from now on never changed) and a copy of `query` as matched, not run."""
        if len(text) > statements.CACHED_TEXT_MAX:
            return
        if len(self._kept) >= statements.CACHED_STATEMENTS:
            self._kept.clear()
        self._kept[text] = KeptSearch(self._context(), tree, dataclasses.replace(query))


def _same_context(kept: Context, now: Context) -> bool:
    return kept[0] is now[0] and kept[1:] == now[1:]


class SearchTemplates:
    """The SQL of index searches restricted to their candidates, kept per statement text with
    a stand-in for the candidates' row ids: a search repeated with other vectors (set aside
    from the text) is printed once, not for every search (about 0.4 ms at 1M rows)."""

    def __init__(self, calls_models: Callable[[exp.Expression], bool]) -> None:
        self._calls_models = calls_models
        self._kept: dict[tuple[str, str], str | None] = {}

    def sql(self, text: str, tree: exp.Expression, query: index_scan.IndexQuery,
            rows: list[int]) -> str | None:
        """The statement `text` (parsed: `tree`, left unchanged) restricted to `rows`; None
        where it is too long to keep or still calls a model (the planner runs it). DuckDB
        leaves the order to index_scan.in_candidate_order."""
        if len(text) > statements.CACHED_TEXT_MAX:
            return None
        key = (text, query.info.name)
        if key not in self._kept:
            if len(self._kept) >= statements.CACHED_STATEMENTS:
                self._kept.clear()
            restricted = index_scan.restrict(tree.copy(), _CANDIDATES, order_after=True)
            self._kept[key] = None if self._calls_models(restricted) else restricted.sql(
                dialect=DIALECT)
        template = self._kept[key]
        if template is None:
            return None
        return vectors_put_back(template).replace(f"'{_CANDIDATES}'",
                                                  f"'{index_scan.listed(rows)}'")
