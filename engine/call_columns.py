"""Rule: qualify each unqualified column a model call reads with the table DuckDB reads it from.

A stage's input query reads a call's arguments in the query the call's columns come from, and
reads only the tables they name: `classify(body, L)` in `EXISTS (SELECT 1 FROM b WHERE ...)`
where body is the outer query's reads a's rows, but only once it is written `a.body`; a call on
one side of a join reads that side alone (n + m rows, not n x m). In ORDER BY, DuckDB reads a
name inside an expression as the FROM clause's column before a select-list alias of that name:
qualified, the input query reads the column too, as the lookup does. Which table has the column
is asked of DuckDB; where it cannot tell, or two tables have it, the column is left as written.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from quarrydb.engine.sqltree import from_clause, select_sources, with_clause

# The columns a SELECT's FROM clause (and joins) gives, lower case; None: not known.
SourceColumns = Callable[[exp.Select], "set[str] | None"]
# A column's meta: the rule qualified it (the call is still named as written, without it).
QUALIFIED_META = "quarry_qualified"
# Between a subquery and the query around it, these make its columns not the outer query's.
_CLOSED = (exp.From, exp.Join, exp.CTE, exp.With, exp.SetOperation, exp.Lateral, exp.Pivot)


def qualify_call_columns(tree: exp.Expression, call_nodes: list[exp.Expression],
                         source_columns: SourceColumns) -> None:
    """Qualify, in place, the unqualified columns of each call's arguments (not of subqueries
    in them) that one table of the call's query, or of a query around it, has."""
    known: dict[int, set[str] | None] = {}
    with_ = with_clause(tree)

    def columns_of(source: exp.Expression) -> set[str] | None:
        if id(source) not in known:
            probe = exp.select("*").from_(source.copy())
            if with_ is not None:
                probe.set("with_" if "with_" in exp.Select.arg_types else "with", with_.copy())
            known[id(source)] = source_columns(probe)
        return known[id(source)]

    for node in call_nodes:
        scope = node.find_ancestor(exp.Select)
        if scope is None:
            continue
        aliases = {e.alias.lower() for e in scope.expressions if isinstance(e, exp.Alias)}
        unqualified = [c for c in node.find_all(exp.Column)
                       if not c.table and c.find_ancestor(exp.Select) is scope]
        if (len(select_sources(scope)) == 1 and _enclosing(scope) is None
                and not aliases & {c.name.lower() for c in unqualified}):
            continue  # one table, no query around, no alias in the way: nothing to ask DuckDB
        for column in unqualified:
            name = column.name.lower()
            found = _table_of(name, scope, columns_of)
            if found is None:
                continue
            table, outer = found
            if outer or len(select_sources(scope)) > 1 or name in aliases:
                column.set("table", table)
                column.meta[QUALIFIED_META] = True
        _qualify_outer_references(scope, columns_of)


def _qualify_outer_references(scope: exp.Select, columns_of: Callable) -> None:
    """Qualify the WHERE's columns of a query around `scope`: the input query keeps a WHERE
    conjunct that reads only the call's query (`bid = id` where id is the outer query's is not
    one, once it is written `a.id`)."""
    where = scope.args.get("where")
    for column in list(where.find_all(exp.Column)) if where is not None else []:
        if column.table or column.find_ancestor(exp.Select) is not scope:
            continue
        found = _table_of(column.name.lower(), scope, columns_of)
        if found is not None and found[1]:
            column.set("table", found[0])


def _table_of(name: str, scope: exp.Select, columns_of: Callable[[exp.Expression], set[str] | None]
              ) -> tuple[exp.Identifier, bool] | None:
    """The alias of the one source that has `name`, in the innermost query that has it, and
    whether that query is one around `scope`."""
    current: exp.Select | None = scope
    while current is not None:
        holders = []
        for source in select_sources(current):
            columns = columns_of(source)
            if columns is None or not source.alias_or_name:
                return None  # cannot tell: DuckDB resolves it as written
            if name in columns:
                holders.append(source)
        if len(holders) > 1:
            return None  # USING's merged column, or ambiguous: as written
        if holders:
            alias = holders[0].args.get("alias")
            identifier = alias.this if isinstance(alias, exp.TableAlias) else holders[0].this
            if not isinstance(identifier, exp.Identifier):
                return None
            return identifier.copy(), current is not scope
        current = _enclosing(current)
    return None


def _enclosing(select: exp.Select) -> exp.Select | None:
    """The query whose columns `select` may read: the one whose expression holds it as a
    subquery (not as a FROM item, a CTE or one side of a set operation)."""
    node = select.parent
    while node is not None and not isinstance(node, exp.Select):
        if isinstance(node, _CLOSED):
            return None
        node = node.parent
    if node is not None and from_clause(node) is None:
        return None
    return node
