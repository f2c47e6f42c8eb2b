"""Split SQL text into statements and recognise quarrydb's own commands (SET, SHOW MODELS, ...).

DuckDB's own parser splits the text, so each statement keeps the exact text the user wrote:
statements without model calls run as written, including syntax sqlglot cannot parse.
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass

import duckdb

_SET = re.compile(
    r"^\s*SET\s+(?:SESSION\s+|LOCAL\s+)?(?P<name>[A-Za-z_]+|\"[A-Za-z_]+\")\s*(?:=|TO)\s*"
    r"(?P<value>.+?)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_RESET = re.compile(r"^\s*RESET\s+(?:SESSION\s+|LOCAL\s+)?(?P<name>[A-Za-z_]+|\"[A-Za-z_]+\")"
                    r"\s*;?\s*$",
                    re.IGNORECASE)
_DOLLAR_QUOTED = re.compile(r"^\$(?P<tag>[A-Za-z_]\w*)?\$(?P<body>.*)\$(?P=tag)?\$$", re.DOTALL)
_SHOW_MODELS = re.compile(r"^\s*SHOW\s+MODELS\s*;?\s*$", re.IGNORECASE)
_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?P<analyze>ANALY[SZ]E\s+)?(?P<body>.*)$",
                      re.IGNORECASE | re.DOTALL)
_EXPLAIN_OPTIONS = re.compile(
    r"^\s*EXPLAIN\s*\(\s*(?!SELECT\b|WITH\b|FROM\b|VALUES\b|TABLE\b|\()[A-Za-z_]",
    re.IGNORECASE)
_EXPLAIN_ANALYZE_OTHER = re.compile(
    r"^\s*EXPLAIN\s*(?:ANALY[SZ]E\b|\([^)]*\bANALY[SZ]E\b[^)]*\))\s*"
    r"(?!\s|SELECT\b|FROM\b|VALUES\b|TABLE\b|\()", re.IGNORECASE)
_CHECKPOINT = re.compile(r"^\s*(?:FORCE\s+)?CHECKPOINT\b", re.IGNORECASE)
_ANY_CHECKPOINT = re.compile(
    r"^\s*(?:(?:FORCE\s+)?CHECKPOINT|(?:CALL|PRAGMA)\s+(?:force_)?checkpoint)\b", re.IGNORECASE)
_CHECKPOINT_FUNCTIONS = frozenset({"checkpoint", "force_checkpoint"})
_IMPORT = re.compile(r"^\s*(?:IMPORT\s+DATABASE|COPY\s+FROM\s+DATABASE)\b", re.IGNORECASE)
# Most statements hold no comment, quoted identifier, $$ string or \ escape (see _code_only):
# only '...' strings, which this blanks at once. Others go through DuckDB's tokenizer.
_PLAIN_STRING = re.compile(r"'(?:[^']|'')*'")
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


def checkpoints(statement: Statement) -> bool:
    """CHECKPOINT in any of its forms, `SELECT * FROM checkpoint()` too (it may compact
    deleted rows, which moves row ids)."""
    if statement.kind in ("CALL", "PRAGMA"):
        return _ANY_CHECKPOINT.match(without_comments(statement.text)) is not None
    return "checkpoint" in statement.text.lower() and mentions_any(statement.text,
                                                                   _CHECKPOINT_FUNCTIONS)


def imports_tables(statement: Statement) -> bool:
    """IMPORT DATABASE and COPY FROM DATABASE, which DuckDB reports as PRAGMA statements: they
    create tables and write rows."""
    return statement.kind == "PRAGMA" and _IMPORT.match(
        without_comments(statement.text)) is not None


def returns_rows(text: str) -> bool:
    """Whether a write has a RETURNING clause (its answer is rows, not DuckDB's count)."""
    return _RETURNING.search(code_only(text)) is not None


def opens_or_ends_transaction(statement: Statement) -> bool | None:
    """True for BEGIN / START TRANSACTION, False for COMMIT / ROLLBACK / END / ABORT, else None."""
    if statement.kind != "TRANSACTION":
        return None
    return _BEGIN.match(without_comments(statement.text)) is not None


def setting(text: str) -> tuple[str, str | None] | None:
    """(name, value) of a SET statement, comments aside; RESET name gives (name, None)."""
    reset = _RESET.match(without_comments(text))
    if reset:
        return reset.group("name").strip('"').lower(), None
    match = _SET.match(without_comments(text))
    if not match:
        return None
    value = match.group("value").strip()
    dollars = _DOLLAR_QUOTED.match(value)
    if dollars:  # $$8$$, $tag$cpu$tag$: DuckDB's other way to write a string
        value = dollars.group("body")
    elif len(value) >= 2 and value[0] == value[-1] == "'":
        value = value[1:-1]
    return match.group("name").strip('"').lower(), value


def without_comments(text: str) -> str:
    """`text` with its -- and /* */ comments made spaces (strings and quoted names kept)."""
    if "--" not in text and "/*" not in text:
        return text
    return _blanked(text, _COMMENTS_BLANK)


def code_only(text: str) -> str:
    """`text` with comments made a space, strings '' and quoted identifiers "": what is left
    is code, where a function name followed by ( is a call. Short texts' are kept: the engine
    asks several questions of each statement."""
    if len(text) > CACHED_TEXT_MAX:
        return _code_only(text)
    return _kept_code_only(text)


def _lowered_code(text: str) -> str:
    """code_only(text) in lowercase, where names are looked for."""
    if len(text) > CACHED_TEXT_MAX:
        return _lower_code(text)
    return _kept_lowered_code(text)


def _code_only(text: str) -> str:
    if not ('"' in text or "$" in text or "--" in text or "/*" in text or "\\" in text):
        return _PLAIN_STRING.sub("''", text)
    return _blanked(text, _ALL_BLANK)


# What each kind of piece that is not code becomes; a kind not named is kept as written.
_ALL_BLANK = {"comment": " ", "identifier": '""', "string": "''"}
_COMMENTS_BLANK = {"comment": " "}


def _blanked(text: str, blanks: dict[str, str]) -> str:
    """`text` with each comment, string or quoted identifier of a kind in `blanks` replaced as
    it says. DuckDB's tokenizer finds them as its parser will ($tag$ strings, E'\'' escapes,
    nested comments); a token runs to the next one, the whitespace between is kept."""
    try:
        tokens = duckdb.tokenize(text)
    except duckdb.Error:  # DuckDB reports the text's mistake when it runs it
        return _PLAIN_STRING.sub("''", text)
    if not text.isascii():  # the tokenizer's offsets count UTF-8 bytes, not characters
        character_at = {offset: i for i, offset in enumerate(
            itertools.accumulate((len(c.encode()) for c in text), initial=0))}
        tokens = [(character_at[start], token) for start, token in tokens]
    pieces, kept_from = [], 0
    for i, (start, token) in enumerate(tokens):
        kind = _NOT_CODE.get(token)
        if kind == "identifier" and text[start] != '"':
            continue  # a bare name: code
        if kind not in blanks:
            continue
        end = tokens[i + 1][0] if i + 1 < len(tokens) else len(text)
        piece = text[start:end]
        pieces += (text[kept_from:start], blanks[kind], piece[len(piece.rstrip()):])
        kept_from = end
    pieces.append(text[kept_from:])
    return "".join(pieces)


_NOT_CODE = {duckdb.token_type.comment: "comment", duckdb.token_type.string_const: "string",
             duckdb.token_type.identifier: "identifier"}


def _lower_code(text: str) -> str:
    return code_only(text).lower()


_kept_code_only = functools.lru_cache(maxsize=CACHED_STATEMENTS)(_code_only)
_kept_lowered_code = functools.lru_cache(maxsize=CACHED_STATEMENTS)(_lower_code)


def is_show_models(text: str) -> bool:
    return bool(_SHOW_MODELS.match(text))


def explain_has_options(text: str) -> bool:
    """EXPLAIN (FORMAT json) ...: options, where `EXPLAIN (SELECT ...)` explains a query."""
    return _EXPLAIN_OPTIONS.match(without_comments(text)) is not None


def explain_runs_a_write(text: str) -> bool:
    """EXPLAIN ANALYZE runs what it explains: of anything but a query, a write or DDL."""
    return _EXPLAIN_ANALYZE_OTHER.match(without_comments(text)) is not None


def explain(text: str) -> tuple[bool, str] | None:
    """(analyze?, the statement explained) for EXPLAIN text, else None."""
    match = _EXPLAIN.match(without_comments(text))
    if not match:
        return None
    return bool(match.group("analyze")), match.group("body")


def words(text: str) -> frozenset[str]:
    """The names written in the text outside its comments and strings (a quoted name too, as
    written inside its quotes): where a table a Python variable holds may be named."""
    if len(text) > CACHED_TEXT_MAX:
        return _words(text)
    return _kept_words(text)


def _words(text: str) -> frozenset[str]:
    if "--" in text or "/*" in text or "$" in text or "\\" in text:
        text = _blanked(text, _CODE_AND_NAMES)
    else:
        text = _PLAIN_STRING.sub("''", text)
    return frozenset(_WORD.findall(text))


_kept_words = functools.lru_cache(maxsize=CACHED_STATEMENTS)(_words)


_CODE_AND_NAMES = {"comment": " ", "string": "''"}
_WORD = re.compile(r"[A-Za-z_]\w*")


def mentions_any(text: str, names: frozenset[str]) -> bool:
    """Does the text (outside comments, strings and quoted identifiers) call one of these
    functions? It runs on every statement: a substring test first, the pattern only where a
    name is there."""
    code = _lowered_code(text)
    pattern, lowered = _calls_of(names)
    return any(name in code for name in lowered) and pattern.search(code) is not None


@functools.lru_cache(maxsize=64)
def _calls_of(names: frozenset[str]) -> tuple[re.Pattern, tuple[str, ...]]:
    """A pattern that finds a call of one of `names` in lowercase code, and the names in
    lowercase (a few sets are asked of, over and over)."""
    lowered = tuple(sorted({name.lower() for name in names}))
    return re.compile(r"\b(?:" + "|".join(map(re.escape, lowered)) + r")\s*\("), lowered
