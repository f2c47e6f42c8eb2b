"""Rule: `SELECT ... WHERE <model predicate> LIMIT n` (no ORDER BY) stops once n rows qualify.

The last model predicate is evaluated on growing chunks of its inputs (2n, 4n, 8n, ... values);
after each chunk DuckDB checks whether n rows already pass, and if so the rest is never sent to a
model. Values not evaluated yet read as NULL, which is why the rule applies only where NULL
cannot make a row pass: plain comparisons of a model call with a constant.
"""

from __future__ import annotations

from sqlglot import exp

from quarrydb.engine.random_draws import draws
from quarrydb.engine.sqltree import conjuncts, to_sql

FIRST_CHUNK = 16
NULL_REJECTING = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.ILike, exp.In,
                  exp.Between)
TRANSPARENT = (exp.Paren,)


def limit_of(tree: exp.Expression, function_names: frozenset[str]) -> int | None:
    """n when the statement is a plain filtered SELECT ... LIMIT n the rule may stop early."""
    if not isinstance(tree, exp.Select) or tree.args.get("order") or tree.args.get("group"):
        return None
    if tree.args.get("distinct") or tree.args.get("having") or tree.args.get("offset"):
        return None
    limit = tree.args.get("limit")
    value = limit.expression if isinstance(limit, exp.Limit) else None
    if not (isinstance(value, exp.Literal) and value.is_int and int(value.name) > 0):
        return None
    if any(e.find(exp.AggFunc, exp.Window) for e in tree.expressions):
        return None
    where = tree.args.get("where")
    if where is not None and draws(where):  # checked, then drawn again: other rows pass
        return None
    model_conjuncts = [c for c in conjuncts(where.this if where else None)
                       if _calls(c, function_names)]
    if not model_conjuncts or not all(_rejects_null(c, function_names) for c in model_conjuncts):
        return None
    return int(value.name)


def qualifying_sql(tree: exp.Select, limit: int) -> str:
    """How many rows pass the WHERE now (at most `limit`): the select list is not computed."""
    probe = tree.copy()
    probe.set("expressions", [exp.Literal.number(1)])
    probe.set("limit", exp.Limit(expression=exp.Literal.number(limit)))
    return f"SELECT count(*) FROM ({to_sql(probe)})"


def _calls(node: exp.Expression, names: frozenset[str]) -> list[exp.Anonymous]:
    return [n for n in node.find_all(exp.Anonymous) if str(n.this).lower() in names]


def _rejects_null(conjunct: exp.Expression, names: frozenset[str]) -> bool:
    """A comparison with a constant whose model call reaches it only through similarity()."""
    if not isinstance(conjunct, NULL_REJECTING):
        return False
    for call in _calls(conjunct, names):
        node = call.parent
        while node is not None and node is not conjunct:
            is_similarity = isinstance(node, exp.Anonymous) and str(node.this).lower() in (
                "similarity", *names)
            if not (is_similarity or isinstance(node, TRANSPARENT)):
                return False
            node = node.parent
    return True
