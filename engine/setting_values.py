"""`current_setting('model_batch_size')` and the other quarrydb settings, answered in SQL.

DuckDB's current_setting() knows only DuckDB's settings; quarrydb's own (SET device, ...) live in
the session. In a SELECT, a call naming one of them becomes that value, as a VARCHAR literal,
before DuckDB sees the statement; every other call stays DuckDB's. Not in a view or macro
(the value would be frozen into it), nor in EXPLAIN or PREPARE: DuckDB's error stands there.
"""

from __future__ import annotations

from sqlglot import exp


def with_setting_values(tree: exp.Expression, values: dict[str, str]) -> bool:
    """Replace, in place, each `current_setting('<name>')` naming a key of `values` (compared
    without case, as DuckDB does) by its value; return whether any was replaced."""
    replaced = False
    for call in list(tree.find_all(exp.Anonymous)):
        if str(call.this).lower() != "current_setting" or len(call.expressions) != 1:
            continue
        name = call.expressions[0]
        if not (isinstance(name, exp.Literal) and name.is_string):
            continue
        value = values.get(name.this.lower())
        if value is None:
            continue
        literal: exp.Expression = exp.cast(exp.Literal.string(value), exp.DataType.Type.VARCHAR)
        if isinstance(call.parent, exp.Select) and call.arg_key == "expressions":
            # a column of its own: named as DuckDB names it, not by the literal
            literal = exp.alias_(literal, f"current_setting('{name.this}')", quoted=True)
        call.replace(literal)
        replaced = True
    return replaced
