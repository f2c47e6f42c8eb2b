"""Small helpers over sqlglot trees that several planner steps share."""

from __future__ import annotations

from sqlglot import exp

DIALECT = "duckdb"


def to_sql(node: exp.Expression) -> str:
    return node.sql(dialect=DIALECT)


def from_clause(select: exp.Select) -> exp.From | None:
    """The FROM clause (sqlglot has named its key both 'from' and 'from_')."""
    return select.args.get("from_") or select.args.get("from")


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
