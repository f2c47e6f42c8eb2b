"""Rule: what a stage's input query may keep of a query whose joins are not plain inner joins.

A stage's inputs must be a superset of what the query reads. A call in a join's ON is computed
over that join with ON relaxed to TRUE (the call is what ON waits for). For an inner join every
row of the query is still there, so the WHERE may filter the inputs. For an outer join it is not:
`a LEFT JOIN b ON a.id = b.id AND classify(b.q, L) = 'x' WHERE b.id IS NULL` keeps the rows of a
that ON rejected, which the relaxed join never null-extends; the WHERE would leave the model no
inputs. Only a predicate over the preserved side alone is as true of the pairs ON sees as of the
rows the query keeps. And a call over a null-extended table reads NULLs where a row found no
match: read alone, that table never gives them (`coalesce(b.q, 'none')`).
"""

from __future__ import annotations

from sqlglot import exp

from quarrydb.engine.sqltree import select_sources


def join_holding(node: exp.Expression, scope: exp.Select) -> exp.Join | None:
    """The join of `scope` whose ON clause holds `node`."""
    for join in scope.args.get("joins") or []:
        on = join.args.get("on")
        if on is not None and any(n is node for n in on.walk()):
            return join
    return None


def _side(join: exp.Join) -> str:
    return str(join.args.get("side") or "").upper()


def _kind(join: exp.Join) -> str:
    return str(join.args.get("kind") or "").upper()


def is_plain_inner(join: exp.Join) -> bool:
    """An inner or cross join, ASOF or not: relaxing its ON only adds rows."""
    return not _side(join) and _kind(join) not in ("SEMI", "ANTI")


def preserved_names(scope: exp.Select, join: exp.Join) -> set[str]:
    """For a call in the ON of `join` (not a plain inner one): the sources whose columns alone a
    WHERE predicate may read and still filter the call's inputs. A LEFT, SEMI or ANTI join keeps
    its left rows whatever ON says; a RIGHT join its own table's; a FULL join none."""
    sources = select_sources(scope)
    position = next(i for i, j in enumerate(scope.args.get("joins") or []) if j is join) + 1
    side = _side(join)
    if side == "FULL":
        return set()
    if side == "RIGHT":
        return {sources[position].alias_or_name}
    return {t.alias_or_name for t in sources[:position]}


def null_extended_names(scope: exp.Select, except_join: exp.Join | None) -> set[str]:
    """The sources an outer join of `scope` (other than `except_join`, whose ON a call is in and
    never sees its null-extended rows) may read as NULLs where a row found no match."""
    names: set[str] = set()
    for join in scope.args.get("joins") or []:
        if join is not except_join:
            names |= extended_by(scope, join)
    return names


def extended_by(scope: exp.Select, join: exp.Join) -> set[str]:
    """The sources of `scope` that `join` may null-extend: its own table for a LEFT join, the
    tables before it for a RIGHT one, both for a FULL one."""
    sources = select_sources(scope)
    position = next(i for i, j in enumerate(scope.args.get("joins") or []) if j is join) + 1
    side = _side(join)
    names: set[str] = set()
    if side in ("LEFT", "FULL"):
        names.add(sources[position].alias_or_name)
    if side in ("RIGHT", "FULL"):
        names |= {t.alias_or_name for t in sources[:position]}
    return names


def relaxed(join: exp.Join) -> exp.Join:
    """A copy of `join` with ON TRUE, as an input query reads it: a SEMI or ANTI join becomes an
    inner one (the call reads the right side's columns, which a SEMI join hides), an ASOF join
    a plain one (DuckDB wants an inequality in an ASOF join's ON)."""
    join = join.copy()
    join.set("on", exp.true())
    if _kind(join) in ("SEMI", "ANTI"):
        join.set("kind", None)
        join.set("side", None)
    if str(join.args.get("method") or "").upper() == "ASOF":
        join.set("method", None)
    return join


def reads_only(predicate: exp.Expression, names: set[str]) -> bool:
    """Whether every column of `predicate` is qualified by one of `names` (and it has no
    subquery, whose columns could be anyone's)."""
    if predicate.find(exp.Select) is not None:
        return False
    return all(c.table in names for c in predicate.find_all(exp.Column))
