"""Parameter values put into a parsed statement, numbered as DuckDB numbers them.

The engine rewrites statements that call models (stage input queries copy predicates around)
and reads the rows a write with parameters touches: both need the values in the tree. DuckDB
gives each `?` the next value in the order the statement is written; `$2` names the second.
sqlglot's tree does not keep that order (a WITH clause comes last in it), so the order is read
from the statement as printed.
"""

from __future__ import annotations

import datetime
import decimal
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sqlglot import exp

from quarrydb.engine.errors import NotSupportedError, ProgrammingError
from quarrydb.engine.sqltree import DIALECT

Params = Sequence[Any] | Mapping[str, Any] | None
_MARK = "quarry_placeholder_"
_MARKED = re.compile(rf"\b{_MARK}(\d+)\b")
DECIMAL_WIDTH_MAX = 38  # DuckDB's widest DECIMAL


def bind_parameters(tree: exp.Expression, params: Params,
                    within: exp.Expression | None = None) -> exp.Expression:
    """`tree` (changed in place) with each placeholder replaced by its value as a literal;
    with `within` (a part of `tree`), only the placeholders in that part.

    The values must match the placeholders as DuckDB's own binding demands: none missing, none
    left over, numbers from $1."""
    holders = list(tree.find_all(exp.Placeholder))
    if not holders:
        if params is not None and len(params):
            raise ProgrammingError("parameters were given but the statement has no placeholders")
        return tree
    if params is None:
        raise ProgrammingError(f"the statement has {len(holders)} placeholder(s) but no parameters")
    ordered = _in_written_order(tree, holders)
    identifiers = _identifiers(ordered)
    _check_all_used(identifiers, params)
    wanted = set(map(id, within.find_all(exp.Placeholder))) if within is not None else None
    values = [_value(holder, identifier, params)
              for holder, identifier in zip(ordered, identifiers)
              if wanted is None or id(holder) in wanted]
    for holder, value in values:
        holder.replace(value)
    return tree


def _in_written_order(tree: exp.Expression, holders: list[exp.Placeholder]
                      ) -> list[exp.Placeholder]:
    """The placeholders in the order the statement prints them (that of its text). Only a
    bare `?` takes its value by position: with a single placeholder, or none bare, the order
    changes nothing, and printing the statement is skipped (a search with its vector as a
    parameter)."""
    if len(holders) < 2 or all(holder.this is not None for holder in holders):
        return holders
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


def _identifiers(holders: list[exp.Placeholder]) -> list[int | str]:
    """Each placeholder's value, as DuckDB numbers them: `$2` the second value (index 1 here),
    `?` the one after the highest number so far, `$name` the value of that name."""
    identifiers: list[int | str] = []
    highest = 0
    for holder in holders:
        name = holder.this
        if name is not None and not str(name).isdigit():
            identifiers.append(str(name))
            continue
        number = highest + 1 if name is None else int(name)
        if number < 1:
            raise ProgrammingError(
                f"parameter numbers start at 1: ${name} names no value (write $1 for the first)")
        identifiers.append(number - 1)
        highest = max(highest, number)
    if len({type(i) for i in identifiers}) > 1:
        raise NotSupportedError("a statement cannot mix named ($name) and positional (?, $1)"
                                " parameters")
    return identifiers


def _check_all_used(identifiers: list[int | str], params: Params) -> None:
    """DuckDB refuses values no placeholder reads: a count mismatch is a mistake, not noise."""
    if isinstance(params, Mapping):
        used = {str(i + 1) if isinstance(i, int) else i.lower() for i in identifiers}
        excess = [str(key) for key in params if str(key).lower() not in used]
    else:
        used = {i for i in identifiers if isinstance(i, int)}
        excess = [str(i + 1) for i in range(len(params)) if i not in used]  # type: ignore[arg-type]
    if excess:
        raise ProgrammingError(
            f"{len(params)} parameter(s) given but the statement reads {len(set(identifiers))}:"
            f" no placeholder reads parameter(s) {', '.join(excess)}")


def _value(holder: exp.Placeholder, identifier: int | str, params: Params
           ) -> tuple[exp.Placeholder, exp.Expression]:
    try:
        if isinstance(params, Mapping):
            value = _by_name(params, str(identifier + 1) if isinstance(identifier, int)
                             else identifier)
        else:
            value = params[identifier]  # type: ignore[index]
    except (IndexError, KeyError, TypeError):
        raise ProgrammingError(f"no value given for parameter {holder.sql()}") from None
    try:
        return holder, _literal(plain_value(value))
    except ValueError as exc:
        raise ProgrammingError(f"parameter {holder.sql(dialect=DIALECT)} has a value SQL cannot"
                               f" write out: {type(value).__name__} ({exc})") from None


def _literal(value: Any) -> exp.Expression:
    """A value written into SQL as DuckDB would bind it: a float stays a DOUBLE (sqlglot writes
    0.5, which DuckDB reads as a DECIMAL, and has no literal for NaN or infinity), a tuple is a
    list, a dict a STRUCT (or a MAP, as DuckDB makes one), a UUID and a timedelta keep their
    types, and so do a Decimal, an int beyond BIGINT and a time with an offset (see below)."""
    if isinstance(value, float):
        return exp.cast(exp.Literal.string(repr(value)), exp.DataType.Type.DOUBLE)
    if isinstance(value, (list, tuple)) and value and all(type(v) is float for v in value):
        # a vector: one string DuckDB casts (fast, and read back by search_sql.literal_vector)
        text = "[" + ", ".join(map(repr, value)) + "]"
        return exp.cast(exp.Literal.string(text), exp.DataType.build("DOUBLE[]"))
    if isinstance(value, (list, tuple)):
        return exp.Array(expressions=[_literal(v) for v in value])
    if isinstance(value, dict):
        return _dict_literal(value)
    if isinstance(value, uuid.UUID):
        return exp.cast(exp.Literal.string(str(value)), exp.DataType.Type.UUID)
    if isinstance(value, datetime.timedelta):
        return exp.func("to_microseconds", exp.Literal.number(value // datetime.timedelta(
            microseconds=1)))
    if isinstance(value, decimal.Decimal):
        return _decimal_literal(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _int_literal(value)
    if isinstance(value, datetime.time) and value.tzinfo is not None:
        return _time_tz_literal(value)
    if isinstance(value, (bytearray, memoryview)):
        return exp.convert(bytes(value))
    return exp.convert(value)


def _dict_literal(value: dict) -> exp.Expression:
    """As DuckDB binds a dict: {} and {'key': [...], 'value': [...]} (lists of one length) are
    MAPs, others STRUCTs."""
    if not value:
        return exp.Anonymous(this="MAP", expressions=[])
    if (value.keys() == {"key", "value"} and all(isinstance(v, (list, tuple))
                                                 for v in value.values())
            and len(value["key"]) == len(value["value"])):
        return exp.Anonymous(this="MAP", expressions=[_literal(list(value["key"])),
                                                      _literal(list(value["value"]))])
    return exp.Struct(expressions=[
        exp.PropertyEQ(this=exp.Literal.string(str(k)), expression=_literal(v))
        for k, v in value.items()])


def _decimal_literal(value: decimal.Decimal) -> exp.Expression:
    """A Decimal as DuckDB binds it: a DECIMAL of its digits (1E+5 is DECIMAL(6,0)), a DOUBLE
    past 38 digits, a FLOAT for NaN and infinities."""
    if value.is_snan():
        raise ValueError("a signalling NaN")
    if not value.is_finite():
        return exp.cast(exp.Literal.string(str(float(value))), exp.DataType.Type.FLOAT)
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    if exponent >= 0:
        width, scale = len(digits) + exponent, 0
    else:
        scale = -exponent
        width = len(digits) if len(digits) >= scale else scale + 1
    if width > DECIMAL_WIDTH_MAX:
        return exp.cast(exp.Literal.string(repr(float(value))), exp.DataType.Type.DOUBLE)
    return exp.cast(exp.Literal.string(format(value, "f")),
                    exp.DataType.build(f"DECIMAL({width}, {scale})"))


def _int_literal(value: int) -> exp.Expression:
    """An int as DuckDB binds it: UBIGINT from 2**63 up to 2**64 (sqlglot's literal would be a
    HUGEINT there); one that no 128-bit integer holds is refused, as DuckDB refuses it."""
    if not -(2**127) <= value < 2**128:
        raise ValueError("Python integer too large for 128-bit integer type")
    if 2**63 <= value < 2**64:
        return exp.cast(exp.Literal.string(str(value)), exp.DataType.Type.UBIGINT)
    return exp.convert(value)


def _time_tz_literal(value: datetime.time) -> exp.Expression:
    """A time with a UTC offset is a TIME WITH TIME ZONE; a zone with no fixed offset (DuckDB
    cannot bind one) is refused."""
    if value.utcoffset() is None:
        raise ValueError("a time whose zone gives no UTC offset")
    return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.Type.TIMETZ)


def _by_name(params: Mapping[str, Any], name: str) -> Any:
    """DuckDB matches `$name` to a key regardless of case."""
    if name in params:
        return params[name]
    matches = [key for key in params if str(key).lower() == name.lower()]
    if not matches:
        raise KeyError(name)
    return params[matches[0]]


def plain_value(value: Any) -> Any:
    """NumPy arrays and scalars (also inside lists and dicts) as the Python values sqlglot
    writes out and DuckDB binds (it refuses numpy.int64 and the like)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(plain_value(v) for v in value)
    if isinstance(value, dict):
        return {k: plain_value(v) for k, v in value.items()}
    return value
