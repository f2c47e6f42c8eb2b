"""Rule: a select item naming an earlier item's alias, where that item calls a model.

`SELECT classify(body, L) AS k, upper(k) FROM notes`: DuckDB lets a later select item name an
earlier one's alias, but not once that item holds a subquery, which a model call becomes (a
lookup into its stage). The reference is replaced by the aliased expression itself: the same
call, so one stage serves both. A column of the FROM clause with that name wins, as in DuckDB;
where the FROM clause's columns cannot be known, nothing is replaced (DuckDB's error stands).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from quarrydb.engine.planner import written_sql

# The columns a SELECT's FROM clause (and joins) gives, lower case; None: not known.
SourceColumns = Callable[[exp.Select], "set[str] | None"]


def inline_model_aliases(tree: exp.Expression, calls_model: Callable[[exp.Expression], bool],
                         source_columns: SourceColumns) -> None:
    """Replace, in place, each later select item's reference to a model call's alias."""
    for select in list(tree.find_all(exp.Select)):
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
