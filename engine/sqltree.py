"""Small helpers over sqlglot trees that several planner steps share."""

from __future__ import annotations

import contextvars
import functools
import re

import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB


class QuarryDuckDB(DuckDB):
    """DuckDB as sqlglot reads it, less one token DuckDB does not have: sqlglot reads `?::` as
    an operator, so `?::INTEGER` (a parameter cast, as DuckDB reads it) failed to parse."""

    class Tokenizer(DuckDB.Tokenizer):
        KEYWORDS = {text: token for text, token in DuckDB.Tokenizer.KEYWORDS.items()
                    if text != "?::"}

    class Parser(DuckDB.Parser):
        # sqlglot reads list_sort(x, 'ASC', 'NULLS LAST') as list_sort(x), DuckDB's defaults,
        # which SET default_order / default_null_order change: kept as written.
        FUNCTIONS = {name: build for name, build in DuckDB.Parser.FUNCTIONS.items()
                     if name not in ("ARRAY_SORT", "SORT_ARRAY", "ARRAY_REVERSE_SORT",
                                     "LIST_REVERSE_SORT", "LIST_SORT")}

        def _parse_ordered(self, parse_method=None):  # noqa: ANN001, ANN202 (sqlglot's)
            """sqlglot reads `x NULLS LAST` as `x`, the same in DuckDB's default order; after
            SET default_null_order = 'nulls_first' it is not: the written clause is kept."""
            ordered = super()._parse_ordered(parse_method)
            written = self._tokens[max(self._index - 2, 0):self._index]
            if ordered is not None and [t.text.upper() for t in written] == ["NULLS", "LAST"]:
                ordered.meta[NULLS_LAST_WRITTEN] = True
            return ordered

    class Generator(DuckDB.Generator):
        def ordered_sql(self, expression: exp.Ordered) -> str:
            sql = super().ordered_sql(expression)
            if expression.meta.get(NULLS_LAST_WRITTEN) and not expression.args.get(
                    "nulls_first") and not sql.endswith(" NULLS LAST"):
                sql += " NULLS LAST"
            return sql


NULLS_LAST_WRITTEN = "nulls_last_written"  # an Ordered's meta key: the text said NULLS LAST


DIALECT = QuarryDuckDB

# Long vector literals ([0.1, 0.2, ... 384 numbers]) are set aside before sqlglot parses a
# statement — parsing, copying and printing thousands of number nodes costs milliseconds per
# query — and put back, as written, in every SQL text made from the tree (see to_sql).
_VECTOR_LITERAL = re.compile(r"\[\s*-?[\d.eE+-]+(?:\s*,\s*-?[\d.eE+-]+){15,}\s*\]")
_STAND_IN = re.compile(r"__quarry_vector\((\d+)\)", re.IGNORECASE)
# A vector literal cast to a float array goes to DuckDB as one string, '[...]'::FLOAT[384]: the
# same value, bound in about 1 ms where 384 separate constants take about 5 ms.
_CAST_STAND_IN = re.compile(
    r"CAST\(__quarry_vector\((\d+)\) AS ((?:REAL|FLOAT|DOUBLE)\[\d*\])\)", re.IGNORECASE)
_set_aside: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("vectors", default=())


def set_vectors_aside(text: str) -> tuple[str, contextvars.Token]:
    """`text` with long vector literals replaced by __quarry_vector(i) stand-ins."""
    literals: list[str] = []

    def stand_in(match: re.Match) -> str:
        literals.append(match.group(0))
        return f"__quarry_vector({len(literals) - 1})"

    quoted = [m.span() for m in re.finditer(r"'(?:[^']|'')*'", text)]
    pieces, last = [], 0
    for match in _VECTOR_LITERAL.finditer(text):
        if any(a <= match.start() < b for a, b in quoted):
            continue
        pieces += [text[last:match.start()], stand_in(match)]
        last = match.end()
    pieces.append(text[last:])
    return "".join(pieces), _set_aside.set(tuple(literals))


def put_vectors_back(token: contextvars.Token) -> None:
    _set_aside.reset(token)


def to_sql(node: exp.Expression) -> str:
    return vectors_put_back(node.sql(dialect=DIALECT))


def vectors_put_back(sql: str) -> str:
    """SQL printed from a tree, its vector stand-ins replaced by the literals they stand for."""
    literals = _set_aside.get()
    if literals:
        sql = _CAST_STAND_IN.sub(lambda m: f"CAST('{literals[int(m.group(1))]}' AS {m.group(2)})",
                                 sql)
        sql = _STAND_IN.sub(lambda m: literals[int(m.group(1))], sql)
    return sql


def with_vectors(text: str) -> str:
    """Statement text with its vector literals back exactly as written (for DuckDB to run)."""
    literals = _set_aside.get()
    return _STAND_IN.sub(lambda m: literals[int(m.group(1))], text) if literals else text


def set_aside_literal(node: exp.Expression) -> str | None:
    """The text of the long vector literal `node` stands in for, if it is one."""
    if not (isinstance(node, exp.Anonymous) and str(node.this).lower() == "__quarry_vector"
            and len(node.expressions) == 1):
        return None
    number = node.expressions[0]
    literals = _set_aside.get()
    if isinstance(number, exp.Literal) and number.is_int and int(number.name) < len(literals):
        return literals[int(number.name)]
    return None


def from_clause(select: exp.Select) -> exp.From | None:
    """The FROM clause (sqlglot has named its key both 'from' and 'from_')."""
    return select.args.get("from_") or select.args.get("from")


def with_clause(node: exp.Expression) -> exp.With | None:
    """The WITH clause (sqlglot has named its key both 'with' and 'with_')."""
    found = node.args.get("with_") or node.args.get("with")
    return found if isinstance(found, exp.With) else None


def conjuncts(condition: exp.Expression | None) -> list[exp.Expression]:
    """`a AND b AND c` -> [a, b, c]."""
    if condition is None:
        return []
    return list(condition.flatten()) if isinstance(condition, exp.And) else [condition]


def is_constant(node: exp.Expression) -> bool:
    """True when the value does not depend on any row: no columns, no subqueries."""
    return not any(
        isinstance(n, (exp.Column, exp.Select, exp.Placeholder, exp.Parameter, exp.Star))
        for n in node.walk()
    )


def select_sources(select: exp.Select) -> list[exp.Expression]:
    """The FROM item and every joined item of a SELECT, in order."""
    source = from_clause(select)
    if source is None:
        return []
    return [source.this, *[j.this for j in select.args.get("joins") or []]]


def without_qualifiers(node: exp.Expression) -> exp.Expression:
    """A copy with table qualifiers dropped: `t.body` and `body` compare equal."""
    node = node.copy()
    for column in node.find_all(exp.Column):
        column.set("table", None)
    return node


def foreign_columns(node: exp.Expression, table_name: str) -> list[exp.Column]:
    """The columns `node` names with a qualifier other than `table_name` (the name FROM
    gives the table): `s.v` may be a struct's field, `other.v` another table's column."""
    name = table_name.lower()
    return [column for column in node.find_all(exp.Column) if column.table and (
        column.table.lower() != name or column.args.get("db") or column.args.get("catalog"))]


def comparable(node: exp.Expression | str) -> str:
    """An expression's SQL as DuckDB reads it, to compare two: table qualifiers dropped and
    identifiers in lower case (DuckDB's names are case-insensitive, quoted or not)."""
    return _comparable(node if isinstance(node, str) else to_sql(node))


@functools.lru_cache(maxsize=256)
def _comparable(text: str) -> str:
    node = without_qualifiers(sqlglot.parse_one(text, dialect=DIALECT))
    for identifier in node.find_all(exp.Identifier):
        identifier.set("this", identifier.name.lower())
        identifier.set("quoted", False)
    return node.sql(dialect=DIALECT)


def table_key(table: exp.Table | str, database: str) -> tuple[str, str, str]:
    """(database, schema, table) as DuckDB resolves a name in `database` (the one in use):
    `items`, `main.items`, `quarry.main.items` and `"Items"` are one table; `s.items` and
    `other.main.items` (an attached database) are others."""
    if isinstance(table, str):
        table = exp.to_table(table, dialect=DIALECT)
    return (table.catalog or database).lower(), (table.db or "main").lower(), table.name.lower()


# Functions (and a sample's draw) whose value may differ between two runs of a statement.
_VOLATILE_NODES = (exp.Rand, exp.Randn, exp.Uuid, exp.CurrentTimestamp, exp.CurrentDate,
                   exp.CurrentTime, exp.CurrentDatetime, exp.CurrentTimestampLTZ,
                   exp.TableSample)
_VOLATILE_NAMES = frozenset({"now", "get_current_timestamp", "transaction_timestamp",
                             "get_current_time", "nextval", "currval", "setseed", "uuidv4",
                             "uuidv7", "random"})


def is_volatile(node: exp.Expression) -> bool:
    """Whether `node` calls a function that may answer otherwise when run again."""
    return any(isinstance(n, _VOLATILE_NODES) or (
        isinstance(n, exp.Anonymous) and str(n.this).lower() in _VOLATILE_NAMES)
        for n in node.walk())


def with_ctes_read(query: exp.Select, node: exp.Expression) -> exp.Select:
    """`query` given the CTEs it reads, from every WITH enclosing `node`: a query the engine
    writes to run on its own (a stage's input) reads the statement's CTEs by name."""
    withs: list[exp.With] = []
    ancestor = node.parent
    while ancestor is not None:
        with_ = with_clause(ancestor)
        if with_ is not None:
            withs.append(with_)
        ancestor = ancestor.parent
    available: dict[str, exp.CTE] = {}
    for with_ in reversed(withs):  # outer first: inner CTEs may read outer ones
        for cte in with_.expressions:
            available[cte.alias] = cte
    recursive = any(bool(w.args.get("recursive")) for w in withs)
    needed: list[str] = []
    frontier: list[exp.Expression] = [query]
    while frontier:
        for table in frontier.pop().find_all(exp.Table):
            name = table.name
            if name in available and name not in needed and not table.db:
                needed.append(name)
                frontier.append(available[name].this)
    if not needed:
        return query
    ordered = [cte for name, cte in available.items() if name in needed]  # definition order
    return _attach_with(query, ordered, recursive)


def _attach_with(query: exp.Select, ctes: list[exp.CTE], recursive: bool) -> exp.Select:
    key = "with_" if "with_" in exp.Select.arg_types else "with"
    query.set(key, exp.With(expressions=[c.copy() for c in ctes], recursive=recursive))
    return query
