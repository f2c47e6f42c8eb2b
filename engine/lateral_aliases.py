"""Rule: select-list aliases where a model call's stage cannot read them.

`SELECT classify(body, L) AS k, upper(k) FROM notes`: DuckDB lets a later select item name an
earlier one's alias, but not once that item holds a subquery, which a model call becomes (a
lookup into its stage). The reference is replaced by the aliased expression itself: the same
call, so one stage serves both.

`SELECT 'ticket: ' || s AS body, classify(body, L) ... WHERE j > 2`: a stage's input query reads
a call's arguments and the WHERE without the select list, where DuckDB resolves those aliases.
A plain alias named in a model call's arguments (in a later select item or the WHERE) or in the
WHERE is replaced by its expression, as DuckDB reads it.

A column of the FROM clause with that name wins, as in DuckDB; where the FROM clause's columns
cannot be known, nothing is replaced (DuckDB's error stands).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from quarrydb.engine.planner import written_sql

# The columns a SELECT's FROM clause (and joins) gives, lower case; None: not known.
SourceColumns = Callable[[exp.Select], "set[str] | None"]


def inline_model_aliases(tree: exp.Expression, calls_model: Callable[[exp.Expression], bool],
                         source_columns: SourceColumns) -> None:
    """Replace, in place, each later select item's reference to a model call's alias, then the
    plain aliases a stage's input query would read (see the module's docstring)."""
    for select in list(tree.find_all(exp.Select)):
        _inline_call_aliases(select, calls_model, source_columns)
        _inline_plain_aliases(select, calls_model, source_columns)


def _inline_call_aliases(select: exp.Select, calls_model: Callable[[exp.Expression], bool],
                         source_columns: SourceColumns) -> None:
    """A later select item's references to an earlier item's alias that calls a model."""
    aliases: dict[str, exp.Expression] = {}
    looked, known = False, None
    for item in list(select.expressions):
        references = [c for c in item.find_all(exp.Column)
                      if not c.table and c.name.lower() in aliases
                      and c.find_ancestor(exp.Select) is select]
        if references and not looked:
            looked, known = True, source_columns(select)
        references = [] if known is None else [
            c for c in references if c.name.lower() not in known]
        if references:
            name = None if isinstance(item, exp.Alias) else written_sql(item)
            for column in references:
                replacement = aliases[column.name.lower()].copy()
                column.replace(replacement)
                item = replacement if column is item else item
            if name is not None:  # named as written, as DuckDB names it: upper(k)
                item.replace(exp.alias_(item.copy(), exp.to_identifier(name, quoted=True)))
        if isinstance(item, exp.Alias) and calls_model(item.this):
            aliases[item.alias.lower()] = item.this


def _inline_plain_aliases(select: exp.Select, calls_model: Callable[[exp.Expression], bool],
                          source_columns: SourceColumns) -> None:
    """Plain aliases named in a model call's arguments (an earlier item's, in the select list;
    any item's, in the WHERE) and in the WHERE: replaced by their expressions."""
    items = list(select.expressions)
    names = [item.alias.lower() if isinstance(item, exp.Alias) and item.alias
             and not calls_model(item.this) else None for item in items]
    wanted = [(c, p) for p, item in enumerate(items) for c in _call_columns(item, calls_model)]
    where = select.args.get("where")
    if where is not None:  # (a WHERE sees every item's alias)
        wanted += [(c, len(items)) for c in where.find_all(exp.Column)]
    wanted = [(c, p) for c, p in wanted if not c.table and c.name.lower() in names[:p]
              and c.find_ancestor(exp.Select) is select]
    known = source_columns(select) if wanted else None
    if known is None:
        return
    aliases: dict[str, exp.Expression] = {}
    for item, name in zip(items, names):
        if name is not None and name not in known:
            aliases.setdefault(name, _expanded(item.this, aliases))
    for column, position in wanted:
        expression = aliases.get(column.name.lower())
        if expression is None or (position == len(items)
                                  and expression.find(exp.AggFunc, exp.Window)):
            continue  # a FROM column wins; an aggregate in WHERE stays DuckDB's error
        column.replace(expression.copy())


def _call_columns(item: exp.Expression, calls_model: Callable[[exp.Expression], bool]
                  ) -> list[exp.Column]:
    """The columns in the arguments of the model calls in `item`."""
    calls = [n for n in item.find_all(exp.Anonymous) if calls_model(n)]
    return [c for call in calls for c in call.find_all(exp.Column)]


def _expanded(node: exp.Expression, aliases: dict[str, exp.Expression]) -> exp.Expression:
    """A copy with the earlier aliases it names replaced by their expressions, as DuckDB reads
    `a || 'x' AS b` after `s AS a` (`aliases` holds no name a FROM column has)."""
    def swap(column: exp.Expression) -> exp.Expression:
        if isinstance(column, exp.Column) and not column.table and column.name.lower() in aliases:
            return aliases[column.name.lower()].copy()
        return column

    return node.copy().transform(swap)
