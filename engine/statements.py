"""Split SQL text into statements and recognise quarrydb's own commands (SET, SHOW MODELS, ...).

DuckDB's own parser splits the text, so each statement keeps the exact text the user wrote:
statements without model calls run as written, including syntax sqlglot cannot parse.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import duckdb

_SET = re.compile(
    r"^\s*SET\s+(?:SESSION\s+|LOCAL\s+)?(?P<name>[A-Za-z_]+)\s*(?:=|TO)\s*(?P<value>.+?)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_RESET = re.compile(r"^\s*RESET\s+(?:SESSION\s+|LOCAL\s+)?(?P<name>[A-Za-z_]+)\s*;?\s*$",
                    re.IGNORECASE)
_SHOW_MODELS = re.compile(r"^\s*SHOW\s+MODELS\s*;?\s*$", re.IGNORECASE)
_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?P<analyze>ANALY[SZ]E\s+)?(?P<body>.*)$",
                      re.IGNORECASE | re.DOTALL)
_STRING = re.compile(r"'(?:[^']|'')*'")
_CHECKPOINT = re.compile(r"^\s*(?:FORCE\s+)?CHECKPOINT\b", re.IGNORECASE)
_COMMENT_OR_STRING = re.compile(r"'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/", re.DOTALL)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
_BEGIN = re.compile(r"\s*(BEGIN|START\s+TRANSACTION)\b", re.IGNORECASE)
# COPY (query) TO ... or COPY table [(columns)] TO ...: the other direction is COPY ... FROM.
_COPY_TO = re.compile(r'^\s*COPY\s+(?:\(|(?:"[^"]*"|[\w.])+\s*(?:\([^)]*\)\s*)?TO\b)',
                      re.IGNORECASE)
CACHED_TEXT_MAX = 4096  # longer texts are not kept in memory
CACHED_STATEMENTS = 256  # texts kept (split, parsed, printed as index searches)


@dataclass(frozen=True)
class Statement:
    text: str
    kind: str  # DuckDB's statement type name: SELECT, INSERT, CREATE, ...


def split(sql: str) -> list[Statement]:
    """The statements of a text; unparseable text stays one statement so its error is precise."""
    if len(sql) > CACHED_TEXT_MAX:
        return list(_split(sql))
    return list(_kept_split(sql))  # a query repeated (with other vectors set aside) is split once


def _split(sql: str) -> tuple[Statement, ...]:
    try:
        found = duckdb.extract_statements(sql)
    except duckdb.Error:
        return (Statement(sql, "UNKNOWN"),)
    return tuple(Statement(s.query.strip(), s.type.name) for s in found) or (
        Statement(sql, "UNKNOWN"),)


_kept_split = functools.lru_cache(maxsize=CACHED_STATEMENTS)(_split)


def changes_no_rows(statement: Statement) -> bool:
    """Statements of kinds that may write, which change no table's rows: CHECKPOINT [database]
    (DuckDB runs it as a CALL) and COPY ... TO a file. After them indexes need not be diffed in
    full; the row ids a checkpoint may move are noticed as after any checkpoint (by the file's
    count of them, see vector_catalog)."""
    if statement.kind == "CALL":
        return _CHECKPOINT.match(statement.text) is not None
    return statement.kind == "COPY" and _COPY_TO.match(statement.text) is not None


def returns_rows(text: str) -> bool:
    """Whether a write has a RETURNING clause (its answer is rows, not DuckDB's count)."""
    return _RETURNING.search(_STRING.sub("''", text)) is not None


def opens_or_ends_transaction(statement: Statement) -> bool | None:
    """True for BEGIN / START TRANSACTION, False for COMMIT / ROLLBACK / END / ABORT, else None."""
    if statement.kind != "TRANSACTION":
        return None
    return _BEGIN.match(statement.text) is not None


def setting(text: str) -> tuple[str, str | None] | None:
    """(name, value) of a SET statement, comments aside; RESET name gives (name, None)."""
    reset = _RESET.match(_without_comments(text))
    if reset:
        return reset.group("name").lower(), None
    match = _SET.match(_without_comments(text))
    if not match:
        return None
    value = match.group("value").strip()
    if len(value) >= 2 and value[0] == value[-1] == "'":
        value = value[1:-1]
    return match.group("name").lower(), value


def _without_comments(text: str) -> str:
    """`text` with its -- and /* */ comments made spaces (string literals kept as written)."""
    return _COMMENT_OR_STRING.sub(lambda m: m.group(0) if m.group(0)[0] == "'" else " ", text)


def is_show_models(text: str) -> bool:
    return bool(_SHOW_MODELS.match(text))


def explain(text: str) -> tuple[bool, str] | None:
    """(analyze?, the statement explained) for EXPLAIN text, else None."""
    match = _EXPLAIN.match(text)
    if not match:
        return None
    return bool(match.group("analyze")), match.group("body")


def mentions_any(text: str, names: frozenset[str]) -> bool:
    """Does the text (outside string literals) call one of these functions?"""
    bare = _STRING.sub("''", text)
    pattern = r"\b(" + "|".join(re.escape(n) for n in sorted(names)) + r")\s*\("
    return re.search(pattern, bare, re.IGNORECASE) is not None
