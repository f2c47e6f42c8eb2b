"""Parameter values put into a parsed statement, numbered as DuckDB numbers them.

The engine rewrites statements that call models (stage input queries copy predicates around)
and reads the rows a write with parameters touches: both need the values in the tree. DuckDB
gives each `?` the next value in the order the statement is written; `$2` names the second.
sqlglot's tree does not keep that order (a WITH clause comes last in it), so the order is read
from the statement as printed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlglot import exp

from quarrydb.engine.errors import ProgrammingError
from quarrydb.engine.sqltree import DIALECT

Params = Sequence[Any] | Mapping[str, Any] | None
_MARK = "quarry_placeholder_"
_MARKED = re.compile(rf"\b{_MARK}(\d+)\b")


def bind_parameters(tree: exp.Expression, params: Params,
                    within: exp.Expression | None = None) -> exp.Expression:
    """`tree` (changed in place) with each placeholder replaced by its value as a literal;
    with `within` (a part of `tree`), only the placeholders in that part."""
    holders = list(tree.find_all(exp.Placeholder))
    if not holders:
        if params:
            raise ProgrammingError("parameters were given but the statement has no placeholders")
        return tree
    if params is None:
        raise ProgrammingError(f"the statement has {len(holders)} placeholder(s) but no parameters")
    wanted = set(map(id, within.find_all(exp.Placeholder))) if within is not None else None
    values, position = [], 0
    for holder in _in_written_order(tree, holders):
        if wanted is None or id(holder) in wanted:
            values.append(_value(holder, position, params))
        position += holder.this is None  # `?`: the next value; `$2`, `$name`: that one
    for holder, value in values:
        holder.replace(value)
    return tree


def _in_written_order(tree: exp.Expression, holders: list[exp.Placeholder]
                      ) -> list[exp.Placeholder]:
    """The placeholders in the order the statement prints them (that of its text)."""
    marks = [exp.column(f"{_MARK}{number}") for number in range(len(holders))]
    for holder, mark in zip(holders, marks):
        holder.replace(mark)
    printed = tree.sql(dialect=DIALECT)
    for holder, mark in zip(holders, marks):
        mark.replace(holder)
    order = [int(number) for number in _MARKED.findall(printed)]
    if sorted(order) != list(range(len(holders))):  # not printed once each: the tree's order
        return holders
    return [holders[number] for number in order]


def _value(holder: exp.Placeholder, position: int, params: Params
           ) -> tuple[exp.Placeholder, exp.Expression]:
    name = holder.this
    try:
        if name is None:
            value = params[position]  # type: ignore[index]
        elif str(name).isdigit():
            value = params[int(name) - 1]  # type: ignore[index]
        else:
            value = params[str(name)]  # type: ignore[index]
    except (IndexError, KeyError, TypeError):
        raise ProgrammingError(f"no value given for parameter {holder.sql()}") from None
    try:
        return holder, exp.convert(value)
    except ValueError:
        raise ProgrammingError(f"parameter {holder.sql(dialect=DIALECT)} has a value SQL cannot"
                               f" write out: {type(value).__name__}") from None
