"""Rule: ORDER BY similarity(<indexed expression>, <constant>) DESC LIMIT k -> a FAISS search.

(and `distance(...)` ascending on an l2 index). The search proposes candidate rows, scored
exactly from the vectors the index keeps; the query then runs as written, restricted to them and
ordered by their rank, so every query shape around it keeps working. With a WHERE filter, the
filter's selectivity (counted by DuckDB) picks the strategy, and the answer always has exactly
min(k, matching rows) rows:

- exact:     few rows match: score them all (no index);
- exact over the matching rows' indexed vectors: up to GATHER_MAX_ROWS (for flat, up to 30% of
             the rows), scored from the vectors the index keeps;
- filtered:  a search restricted to the matching rows' ids (a FAISS id selector); for IVF at
             any share (its probed lists are scanned whole either way, so the restriction
             costs nothing and keeps the unfiltered recall);
- widening:  most rows match (graph and flat): search k / selectivity rows, keep the matching
             ones, widen until k are found.

Any approximate search that comes back short falls back to exact: never fewer rows than asked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
from sqlglot import exp

from quarrydb.engine.ordering_facts import ENGINE_MACROS
from quarrydb.engine.sqltree import (
    DIALECT,
    NULLS_LAST_WRITTEN,
    comparable,
    foreign_columns,
    from_clause,
    is_constant,
    is_volatile,
    to_sql,
    with_clause,
)
from quarrydb.engine.vector_catalog import IndexInfo, IndexOutOfUse, VectorCatalog
from quarrydb.engine.vector_index import VectorIndex, in_set, unrankable

EXACT_MAX_ROWS = 2000
ROW_IDS = exp.DataType.build("BIGINT[]", dialect=DIALECT)
# Up to this many matching rows (for flat: up to this share of the table) the matching rows'
# vectors are scored exactly, read from the index's own store: cheaper and surer than a graph
# walk that skips most nodes it meets (HNSW with a 1% filter often comes back short).
GATHER_MAX_ROWS = 20_000
FLAT_GATHER_MAX_SELECTIVITY = 0.3
# Above this share a search of k / selectivity rows, filtered after, finds the rows as well as an
# unfiltered search does (measured on 1M rows at 10%: recall 0.92 filtered, higher widening).
FILTERED_MAX_SELECTIVITY = 0.05
# In a SELECT list these see more than each row on its own (windows, aggregates), or make rows
# of their own (unnest): restricted to the candidates they would answer otherwise.
_WHOLE_TABLE_NODES = (exp.Window, exp.AggFunc, exp.Unnest, exp.Explode)
# The column a search's SQL adds to its answer, to put the rows in the candidates' order.
CANDIDATE_ROW = "__quarry_candidate_row"


@dataclass
class IndexQuery:
    """A query the index can answer, and how it was answered (for EXPLAIN)."""

    info: IndexInfo
    k: int
    probe: exp.Expression  # the constant side: embed('text') or a vector literal
    source: exp.Table
    where: exp.Expression | None
    with_: exp.With | None = None  # the statement's CTEs, which the WHERE may use
    strategy: str = ""
    matching: int = 0
    total: int = 0
    candidates: int = 0

    @property
    def selectivity(self) -> float:
        return self.matching / self.total if self.total else 0.0

    def describe(self) -> str:
        head = (f"index {self.info.name} ({self.info.options.kind}, {self.info.options.metric})"
                f" on {self.info.table}: strategy {self.strategy}")
        if not self.total:  # the index was not used: no rows were counted
            return f"{head}, k={self.k}"
        return (f"{head}, estimated selectivity {self.selectivity:.4f} ({self.matching} of"
                f" {self.total} rows), k={self.k}, candidates {self.candidates}"
                + (", ordered by the index's exact scores" if self.candidates else ""))


# The orderings an index answers, by metric: the functions, and whether best is descending.
# An `ip` index ranks by inner product, which DuckDB computes under these names; similarity()
# is cosine, which an inner product ranks alike only on vectors of one length.
# (array_inner_product too, but it binds arrays only: DuckDB's error on lists would be lost.)
INNER_PRODUCTS = frozenset({"list_inner_product", "list_dot_product"})
ORDERINGS = {"cosine": (frozenset({"similarity"}), True), "l2": (frozenset({"distance"}), False),
             "ip": (INNER_PRODUCTS, True)}
SEARCH_FUNCTIONS = frozenset().union(*(names for names, _ in ORDERINGS.values()))


def match(tree: exp.Expression, catalog: VectorCatalog, names: frozenset[str]
          ) -> IndexQuery | None:
    """The index query in `tree`, when its shape fits and an index covers it."""
    if not isinstance(tree, exp.Select) or tree.args.get("joins") or tree.args.get("group"):
        return None
    if tree.args.get("distinct") or tree.args.get("having") or tree.args.get("offset"):
        return None
    if tree.args.get("qualify") or any(e.find(*_WHOLE_TABLE_NODES) for e in tree.expressions):
        return None  # these would see the candidates only, not every row
    called = _called_names(tree.expressions) - names - ENGINE_MACROS
    if called and called & catalog.ordering.user_macros():
        return None  # a macro may hold a window or an aggregate (see _WHOLE_TABLE_NODES)
    order, limit = tree.args.get("order"), tree.args.get("limit")
    value = limit.expression if isinstance(limit, exp.Limit) else None
    if order is None or len(order.expressions) != 1 or not (
            isinstance(value, exp.Literal) and value.is_int) or _limit_options(limit):
        return None  # LIMIT 10% or WITH TIES: not k rows
    ordered = order.expressions[0]
    call = ordered.this
    if not (isinstance(call, exp.Anonymous) and len(call.expressions) == 2):
        return None
    descending = ordered.args.get("desc")
    defaults = catalog.ordering.sort_defaults()
    if descending is None:  # ORDER BY x: in DuckDB's default direction (SET default_order)
        descending = defaults.descending
    if ordered.args.get("nulls_first") or (
            not ordered.meta.get(NULLS_LAST_WRITTEN) and defaults.nulls_first(descending)):
        return None  # rows without a vector first: the index holds none of them
    source = from_clause(tree)
    if source is None or not isinstance(source.this, exp.Table) or not source.this.name:
        return None
    table = source.this
    if not _plain_table(table):
        return None  # PIVOT, a column list that renames, time travel, ...
    if tree.args.get("sample") or table.args.get("sample") or _shadowed(tree, table):
        return None  # a sample: the best rows of a sample; a CTE of the table's name
    where = tree.args.get("where")
    if where is not None and (is_volatile(where) or any(
            str(n.this).lower() in names for n in where.find_all(exp.Anonymous))):
        return None  # random(): the rows counted would not be the rows the query keeps
    first, second = call.expressions
    for indexed, probe in ((first, second), (second, first)):
        if (not is_constant(probe) or is_volatile(probe) or is_constant(indexed)
                or foreign_columns(indexed, table.alias_or_name)):
            continue
        wanted = comparable(indexed)
        for info in catalog.all():
            functions, best_first = ORDERINGS[info.options.metric]
            if (str(call.this).lower() in functions
                    and descending == best_first
                    and comparable(info.expression) == wanted
                    and catalog.locations.of(table) == info.location):
                return IndexQuery(info, int(value.name), probe, table,
                                  where.this if where else None, with_clause(tree))
    return None


def _called_names(expressions: list[exp.Expression]) -> set[str]:
    """The names, in lower case, that the functions called in `expressions` may have been
    written by: a macro of the user's may take any of them, DuckDB's own included (md5)."""
    called: set[str] = set()
    for expression in expressions:
        for call in expression.find_all(exp.Func):
            if isinstance(call, exp.Anonymous):
                called.add(call.name.lower())
            else:
                called.update(name.lower() for name in type(call).sql_names())
    return called


def _plain_table(table: exp.Table) -> bool:
    """Whether FROM names the table as it is: no PIVOT / UNPIVOT, no alias column list (which
    renames its columns), no AT (time travel), no other clause sqlglot keeps on a table."""
    alias = table.args.get("alias")
    if alias is not None and alias.args.get("columns"):
        return False
    return not any(value for key, value in table.args.items()
                   if key not in ("this", "db", "catalog", "alias", "sample"))


def _limit_options(limit: exp.Limit) -> bool:
    """Whether the LIMIT is more than a row count (a percentage, WITH TIES)."""
    options = limit.args.get("limit_options")
    return options is not None and any(options.args.get(key) for key in ("percent", "with_ties"))


def _shadowed(tree: exp.Select, table: exp.Table) -> bool:
    """Whether a CTE of the statement has the table's name (then FROM names the CTE)."""
    with_ = with_clause(tree)
    return with_ is not None and not table.db and any(
        cte.alias_or_name.lower() == table.name.lower() for cte in with_.expressions)


def candidates(query: IndexQuery, catalog: VectorCatalog, probe_vector: np.ndarray
               ) -> list[int] | None:
    """The rows the index proposes, best first; None: run the query as written (exact)."""
    try:
        index = catalog.current(query.info.name)
    except IndexOutOfUse as exc:  # e.g. a row written since: DuckDB ranks it, the index not
        query.strategy = f"exact ({exc.why}: {exc})"
        return None
    metric = query.info.options.metric
    if (probe_vector.ndim != 1 or len(probe_vector) != index.dim
            or not np.isfinite(probe_vector).all()
            or (metric == "cosine" and not probe_vector.any())
            or unrankable(probe_vector, metric, index.dim)):  # products that overflow FLOAT
        query.strategy = "exact (the probe is not a vector the index can rank by)"
        return None  # DuckDB's answer: its error, or its order for a NULL or zero probe
    has_nulls = catalog.null_rows(query.info.name) > 0
    if has_nulls and query.info.options.metric == "ip":
        query.strategy = "exact (a NULL vector: DuckDB's inner product of it is an error)"
        return None
    query.total = index.size
    matching_rows = np.zeros(0, dtype=np.int64)
    if query.where is None:
        query.matching = query.total
    else:  # one scan gives both the count (for the strategy) and the rows themselves
        # Rows with a NULL input are not in the index; when there are none, not testing for
        # them saves reading the vector column (a few ms for 10% of 1M FLOAT[384] rows).
        filters = " AND ".join(
            ([f"({query.info.key_expression}) IS NOT NULL"] if has_nulls else [])
            + [f"({to_sql(query.where)})"])
        ctes = f"{to_sql(query.with_)} " if query.with_ is not None else ""
        try:
            matching_rows = catalog.con.execute(
                f"{ctes}SELECT rowid FROM {to_sql(query.source)} WHERE {filters}"
            ).fetchnumpy()["rowid"].astype(np.int64)
        except duckdb.Error:  # e.g. the WHERE names a SELECT list alias: only the query binds it
            query.strategy = "exact (the filter cannot be counted apart from the query)"
            return None
        query.matching = len(matching_rows)
    wanted = min(query.k, query.matching)
    index.main_came_back_short = False  # see VectorIndex.search
    if query.where is None and query.matching == query.total:
        query.strategy = "search"
        rows, scores = _search(index, probe_vector, query.k, None)
    elif query.matching <= max(EXACT_MAX_ROWS, query.k):
        query.strategy = "exact"
        return None
    elif (gathered := _gathered(index, query, probe_vector, matching_rows)) is not None:
        query.strategy = "exact over the matching rows' indexed vectors"
        rows, scores = gathered
    elif query.selectivity <= FILTERED_MAX_SELECTIVITY or query.info.options.kind == "ivf":
        query.strategy = "filtered search"
        rows, scores = _search(index, probe_vector, query.k,
                               index.vids_of_rows(matching_rows))
    else:
        query.strategy = "widening search"
        rows, scores = _widening(index, query, probe_vector, matching_rows, wanted)
    # Rows whose vector is NULL sort last in the query as written; when fewer than k vectors
    # match they belong in the answer, which only the exact path gives.
    if (len(rows) < wanted or index.main_came_back_short
            or (has_nulls and query.matching < query.k)):
        query.strategy += " -> exact (came back short)"
        return None
    rows, scores = rows[:query.k], scores[:query.k]  # the answer, in its order
    if query.info.options.metric == "cosine" and len(scores) and scores[-1] <= 0:
        # A vector of no direction (all zeros) scores 0 here; its similarity() is NULL,
        # ranked last: where the answer reaches down to 0, only DuckDB orders it right.
        query.strategy += " -> exact (scores reach 0)"
        return None
    query.candidates = len(rows)
    return rows.tolist()


def listed(rows: list[int]) -> str:
    """Row ids as the text of a DuckDB list: '[3, 1, 2]'."""
    return f"[{', '.join(map(str, rows))}]"


def restrict(tree: exp.Select, rows_text: str, order_after: bool = False) -> exp.Select:
    """`tree` (changed in place: the session's own parse, no copy) limited to the candidate
    rows `rows_text` names, and ordered by their rank, which is the answer's order: in SQL, or
    with `order_after` by in_candidate_order after DuckDB's answer.

    A WHERE is not asked again: the candidates are rows it was found to keep (see candidates),
    and a filter that draws at random, perhaps unseen in a macro or a view, would keep others
    the second time (fewer than k rows)."""
    # A semi-join, not `rowid IN (1, 2, ...)`: DuckDB pushes it into the scan as a join filter,
    # so only the candidates' vectors are read (measured: 5 ms against 90 ms on 1M rows).
    rows = exp.Cast(this=exp.Literal.string(rows_text), to=ROW_IDS.copy())
    condition = exp.In(this=exp.column("rowid"),
                       query=exp.Select(expressions=[exp.Unnest(expressions=[rows])]).subquery(
                           copy=False))
    tree.where(condition, append=False, copy=False)
    if order_after:
        _select_candidate_row(tree)
    else:
        _order_by_rank(tree, rows.copy())
    return tree


def in_candidate_order(table: pa.Table, rows: list[int]) -> pa.Table:
    """A search's answer (from restrict(order_after=True)) in the order of its candidate
    `rows`, without the row id column that tells it."""
    rank = {row: position for position, row in enumerate(rows)}
    found = table.column(table.num_columns - 1).to_pylist()
    order = sorted(range(len(found)), key=lambda i: rank[found[i]])
    return table.remove_column(table.num_columns - 1).take(np.array(order, dtype=np.int64))


def _select_candidate_row(tree: exp.Select) -> None:
    """No ORDER BY, and each row's id as a last column: ordering k rows in Python costs a few
    microseconds, DuckDB's ORDER BY list_position(...) about 0.5 ms (1M rows, 2 cores). The
    candidates are the best k, so LIMIT k keeps them all."""
    tree.set("order", None)
    tree.select(exp.alias_(exp.column("rowid"), CANDIDATE_ROW), append=True, copy=False)


def _order_by_rank(tree: exp.Select, ranked_rows: exp.Expression) -> None:
    """ORDER BY the candidates' rank instead of similarity(...): the index scored them exactly
    from the vectors it keeps (cosine of unit vectors, L2, or the inner product), so DuckDB
    need not read their vectors, cast the probe literal and score them again (about 1.5 ms of
    a 1M-row query), nor run a model for an indexed model expression. Rows whose scores differ
    only in float rounding may come in the other order."""
    ordered = tree.args["order"].expressions[0]
    ordered.set("this", exp.func("list_position", ranked_rows, exp.column("rowid")))
    ordered.set("desc", False)


# A search's answer: the rows, best first, and their scores.
Ranked = tuple[np.ndarray, np.ndarray]


def _search(index: VectorIndex, probe: np.ndarray, k: int, allowed: np.ndarray | None
            ) -> Ranked:
    return index.found_rows(*index.search(probe, k, allowed))


def _gathered(index: VectorIndex, query: IndexQuery, probe: np.ndarray,
              matching_rows: np.ndarray) -> Ranked | None:
    """The best k of the matching rows, scored from the index's own vectors; None when that
    is not the cheaper way (too many rows)."""
    if query.info.options.kind == "flat":
        if query.selectivity > FLAT_GATHER_MAX_SELECTIVITY:
            return None
    elif query.matching > GATHER_MAX_ROWS:
        return None
    return index.found_rows(*index.exact_among(probe, query.k,
                                               index.vids_of_rows(matching_rows)))


def _widening(index: VectorIndex, query: IndexQuery, probe: np.ndarray,
              matching_rows: np.ndarray, wanted: int) -> Ranked:
    """Search more than k and keep the matching rows, more each time, until k are found."""
    reach = math.ceil(query.k / max(query.selectivity, 1e-6) * 2)
    while True:
        candidates, scores = _search(index, probe, reach, None)
        kept = in_set(candidates, matching_rows)  # in FAISS's order, best first
        if kept.sum() >= wanted or reach >= query.total:
            return candidates[kept], scores[kept]
        reach *= 4
