"""executemany's model calls, batched across its parameter sets.

`executemany("INSERT INTO notes VALUES (?, ?, embed(?))", rows)` runs the statement once per
row, and each run would call the model on one value: 300 rows, 300 model calls. A model call
whose arguments are parameters and constants only is computed first for every row at once, as
one SELECT over a VALUES list (batched, with its results cached); each row's statement then
finds its value in the result cache.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp

from quarrydb.engine.parameters import Params, bind_parameters
from quarrydb.engine.sqltree import DIALECT

ROWS_PER_STATEMENT = 512  # a VALUES list of this many rows prints and plans in milliseconds
PARAMETER_COLUMN = "quarry_parameter"


def batched_calls_sql(tree: exp.Expression, call_nodes: list[exp.Expression],
                      param_sets: Sequence[Params]) -> list[str]:
    """SELECT statements computing each call of `tree` (in `call_nodes`) that reads parameters
    and constants alone over all `param_sets`; none where there is no such call."""
    statements = []
    for position, node in enumerate(call_nodes):
        if not _reads_parameters_only(node, call_nodes):
            continue
        template = node.copy()
        for number, holder in enumerate(list(template.find_all(exp.Placeholder))):
            holder.replace(exp.column(f"{PARAMETER_COLUMN}{number}"))
        rows = _distinct_rows(tree, position, call_nodes, param_sets)
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start:start + ROWS_PER_STATEMENT]
            names = ", ".join(f"{PARAMETER_COLUMN}{n}" for n in range(len(chunk[0])))
            values = ", ".join(f"({', '.join(row)})" for row in chunk)
            statements.append(f"SELECT count({template.sql(dialect=DIALECT)}) FROM"
                              f" (VALUES {values}) AS {PARAMETER_COLUMN}s({names})")
    return statements


def _reads_parameters_only(node: exp.Expression, call_nodes: list[exp.Expression]) -> bool:
    """A parameter in it, and no column, subquery or other model call."""
    return (node.find(exp.Placeholder) is not None and node.find(exp.Column, exp.Select) is None
            and not any(other is not node and any(n is other for n in node.walk())
                        for other in call_nodes))


def _distinct_rows(tree: exp.Expression, position: int, call_nodes: list[exp.Expression],
                   param_sets: Sequence[Params]) -> list[tuple[str, ...]]:
    """Each parameter set's values of the call's placeholders (in its own order), as SQL."""
    rows: dict[tuple[str, ...], None] = {}
    for params in param_sets:
        bound = tree.copy()
        call = _same_node(tree, bound, call_nodes[position])
        holders = [exp.Paren(this=h.copy()) for h in call.find_all(exp.Placeholder)]
        for original, wrapped in zip(list(call.find_all(exp.Placeholder)), holders):
            original.replace(wrapped)
        bind_parameters(bound, params, within=call)
        rows[tuple(h.this.sql(dialect=DIALECT) for h in holders)] = None
    return list(rows)


def _same_node(tree: exp.Expression, copy: exp.Expression, node: exp.Expression
               ) -> exp.Expression:
    """The node of `copy` at the place `node` has in `tree`."""
    return next(c for o, c in zip(tree.walk(), copy.walk()) if o is node)
