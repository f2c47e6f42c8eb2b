"""Rule: a random draw that feeds a model call is drawn once, into a temporary table.

A stage's input query reads again the rows its call's query reads, and the final query reads
them once more: random(), a TABLESAMPLE or USING SAMPLE, ORDER BY random() LIMIT n, uuid() or
nextval() run each time pick other rows or values, and a row only the final query drew would
find no model result (NULL). So each part of the statement that draws and holds no model call
is computed once, before any stage, into a temporary table that the stages and the final query
both read: a FROM item (a sampled table, a subquery), a CTE, and in a call's own query over one
FROM item, its random WHERE conjuncts, its USING SAMPLE, and its ORDER BY random() LIMIT n. A
sample of 10 rows then sends 10 rows to a model, not the whole table. What cannot move this way
(a draw in a call's arguments, in a join's ON) the planner refuses before any model runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from quarrydb.engine.errors import ProgrammingError
from quarrydb.engine.sqltree import conjuncts, from_clause, to_sql, with_ctes_read

# Functions that answer otherwise each time they run. The clock (now(), current_date) is left
# out: it is read once per statement, and two statements a moment apart filter alike.
_RANDOM_NODES = (exp.Rand, exp.Randn, exp.Uuid, exp.TableSample)
_RANDOM_NAMES = frozenset({"random", "uuidv4", "uuidv7", "gen_random_uuid", "nextval",
                           "setseed"})
# Between a query and the statement's root, these keep it a row source (not a subquery in an
# expression, whose columns may be an outer query's).
_ROW_SOURCE_PATH = (exp.From, exp.Join, exp.Subquery, exp.CTE, exp.With, exp.SetOperation)


@dataclass
class Drawn:
    """A temporary table the statement's random draws are made into, once."""

    table: str
    sql: str

    def create_sql(self, empty: bool = False) -> str:
        """The statement that makes it (empty: its columns only, for EXPLAIN)."""
        body = f"SELECT * FROM ({self.sql}) LIMIT 0" if empty else self.sql
        return f"CREATE TEMPORARY TABLE {self.table} AS {body}"

    @property
    def drop_sql(self) -> str:
        return f"DROP TABLE IF EXISTS temp.main.{self.table}"


def draws(node: exp.Expression) -> bool:
    """Whether `node` draws at random: a random function or a sample, anywhere in it."""
    return any(isinstance(n, _RANDOM_NODES) or (
        isinstance(n, exp.Anonymous) and str(n.this).lower() in _RANDOM_NAMES)
        for n in node.walk())


def draw_once(tree: exp.Expression, call_nodes: list[exp.Expression],
              scopes: list[exp.Expression], prefix: str) -> list[Drawn]:
    """Rewrite, in place, each random draw the model calls read to read a temporary table,
    innermost first; the tables to make, in the order to make them. `scopes`: each call's query."""
    held = {id(n) for node in call_nodes for n in node.walk()}
    scope_ids = {id(s) for s in scopes}
    drawn: list[Drawn] = []

    def holds_call(node: exp.Expression) -> bool:
        return any(id(n) in held for n in node.walk())

    nodes = list(tree.walk())
    for node in reversed(nodes):  # a node's descendants come before it
        made: Drawn | None = None
        name = f"{prefix}drawn{len(drawn) + 1}"
        if isinstance(node, exp.CTE) and draws(node.this) and not holds_call(node):
            made = _draw_cte(node, name)
        elif _is_from_item(node) and draws(node) and not holds_call(node):
            made = _draw_item(node, name)
        elif id(node) in scope_ids and isinstance(node, exp.Select):
            made = _draw_scope_rows(node, name, holds_call)
        if made is not None:
            drawn.append(made)
    if drawn and any(isinstance(n, exp.Column) and n.name.lower() == "rowid" for n in nodes):
        raise ProgrammingError(
            "rowid beside a model call over rows drawn at random is not supported: the rows"
            " are drawn once into a table of their own (draw them first, e.g. CREATE TEMP"
            " TABLE drawn AS SELECT rowid AS row_id, * FROM t USING SAMPLE 10, then query it)")
    return drawn


def _is_from_item(node: exp.Expression) -> bool:
    """A FROM or JOIN item (not LATERAL: it reads the rows before it) of a row source, or a
    sampled table anywhere (it reads no other query's columns)."""
    if not (isinstance(node.parent, (exp.From, exp.Join)) and node.arg_key == "this"):
        return False
    plain_table = isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier)
    return plain_table or (not isinstance(node, exp.Lateral) and _is_row_source(node))


def _is_row_source(node: exp.Expression) -> bool:
    """Whether no subquery in an expression holds `node`: it reads no outer query's columns."""
    child, parent = node, node.parent
    while parent is not None:
        if isinstance(parent, exp.Select) and not isinstance(child, _ROW_SOURCE_PATH):
            return False
        child, parent = parent, parent.parent
    return True


def _draw_cte(cte: exp.CTE, table: str) -> Drawn:
    """WITH x AS (<draws>) -> WITH x AS (SELECT * FROM <table of x's rows>)."""
    rows = exp.select("*").from_(exp.to_table(cte.alias_or_name))
    sql = to_sql(with_ctes_read(rows, cte.this))
    cte.set("this", exp.select("*").from_(exp.to_table(table)))
    return Drawn(table, sql)


def _draw_item(item: exp.Expression, table: str) -> Drawn:
    """FROM <item that draws> AS x -> FROM <table of its rows> AS x."""
    sql = to_sql(with_ctes_read(exp.select("*").from_(item.copy()), item))
    item.replace(_read_as(table, item))
    return Drawn(table, sql)


def _read_as(table: str, item: exp.Expression) -> exp.Table:
    """The temporary table under the item's name (its column names are already the item's).
    Columns qualified with the item's schema or database (`main.t.i`) lose those parts: the
    name is the temporary table's alias now."""
    name = item.alias or (item.name if isinstance(item, exp.Table) else "")
    read = exp.to_table(table)
    if name:
        read.set("alias", exp.TableAlias(this=exp.to_identifier(name)))
        if isinstance(item, exp.Table) and not item.alias and (item.db or item.catalog):
            for column in item.root().find_all(exp.Column):
                if column.table.lower() == name.lower():
                    column.set("db", None)
                    column.set("catalog", None)
    return read


def _draw_scope_rows(scope: exp.Select, table: str, holds_call) -> Drawn | None:
    """In a call's query over one FROM item: its random WHERE conjuncts, its USING SAMPLE, and
    an ORDER BY that draws with a LIMIT, made once over that item (the same rows, drawn once).
    The ORDER BY stays: the few rows drawn are ordered again, as the query orders them."""
    source = from_clause(scope)
    if source is None or scope.args.get("joins") or not _is_row_source(scope):
        return None
    where = scope.args.get("where")
    parts = conjuncts(where.this if where is not None else None)
    aliases = {e.alias.lower() for e in scope.expressions if isinstance(e, exp.Alias)}
    movable = [p for p in parts if _movable(p, aliases, holds_call)]
    sample = scope.args.get("sample")
    ordered = _random_top(scope, parts, movable, aliases, holds_call)
    moved = movable if ordered else [p for p in movable if draws(p)]
    if not (moved or sample is not None or ordered):
        return None
    rows = exp.select("*").from_(source.this.copy())
    if moved:
        rows.where(exp.and_(*[p.copy() for p in moved]), copy=False)
    for key in ("sample", *(("order", "limit", "offset") if ordered else ())):
        if scope.args.get(key) is not None:
            rows.set(key, scope.args[key].copy())
    sql = to_sql(with_ctes_read(rows, source.this))
    source.this.replace(_read_as(table, source.this))
    kept = [p for p in parts if not any(p is m for m in moved)]
    scope.set("where", exp.Where(this=exp.and_(*kept, copy=False)) if kept else None)
    for key in ("sample", *(("limit", "offset") if ordered else ())):
        scope.set(key, None)
    return Drawn(table, sql)


def _movable(conjunct: exp.Expression, aliases: set[str], holds_call) -> bool:
    """A WHERE conjunct the table of drawn rows can apply: no model call, no subquery (it may
    read an outer query), no select-list alias (that table has no select list)."""
    return not (holds_call(conjunct) or conjunct.find(exp.Select) is not None
                or _names_alias(conjunct, aliases))


def _names_alias(node: exp.Expression, aliases: set[str]) -> bool:
    return any(not c.table and c.name.lower() in aliases for c in node.find_all(exp.Column))


def _random_top(scope: exp.Select, parts: list[exp.Expression], movable: list[exp.Expression],
                aliases: set[str], holds_call) -> bool:
    """Whether the query is `... ORDER BY <draws> LIMIT n` over rows its WHERE picks alone:
    no model call, grouping, window, DISTINCT or alias in the way, every conjunct movable."""
    order, limit = scope.args.get("order"), scope.args.get("limit")
    if order is None or limit is None or not draws(order) or len(movable) < len(parts):
        return False
    if any(scope.args.get(k) for k in ("group", "having", "qualify", "distinct")):
        return False
    if any(e.find(exp.AggFunc, exp.Window) for e in scope.expressions):
        return False
    positional = any(isinstance(o.this, exp.Literal) for o in order.expressions)
    return not (holds_call(order) or positional or _names_alias(order, aliases))
