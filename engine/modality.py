"""Bind, part two: what kind of value does a model call read — text, image, audio, or media?

- `image(x)` / `audio(x)` say so explicitly (x a path, file:// URI or BLOB);
- a column that comes from `read_media(...)`'s `path`, directly or through CTEs and subqueries,
  is media whose kind is told file by file (a mixed folder works);
- a user table's column declared with `COMMENT ON COLUMN t.c IS 'media'` (or 'media:image',
  'media:audio') is media too; DuckDB keeps the comment in the database;
- anything else, a plain VARCHAR included, is text and is never opened as a file.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from quarrydb.engine.sqltree import select_sources, with_clause

MARKERS = {"image": "image", "audio": "audio"}
MEDIA_COMMENT = "media"
READ_MEDIA = "read_media"

# (schema or None, table, column) -> the column's comment, or None
CommentLookup = Callable[[str | None, str, str], str | None]


def unwrap_marker(arg: exp.Expression) -> tuple[exp.Expression, str | None]:
    """image(x) -> (x, 'image'); anything else -> (arg, None)."""
    if isinstance(arg, exp.Anonymous) and str(arg.this).lower() in MARKERS:
        if len(arg.expressions) == 1:
            return arg.expressions[0], MARKERS[str(arg.this).lower()]
    return arg, None


def modality_of(arg: exp.Expression, comments: CommentLookup) -> str:
    """'image' / 'audio' / 'media' (kind per value) / 'text' for an input argument."""
    if isinstance(arg, exp.Column):
        return _trace_column(arg.name, arg.table, arg, comments, depth=0) or "text"
    return "text"


def _trace_column(
    name: str, qualifier: str, node: exp.Expression, comments: CommentLookup, depth: int
) -> str | None:
    """Follow a column to where it is made: read_media, a declared table column, or neither."""
    if depth > 16:
        return None
    scope = node if isinstance(node, exp.Select) else node.find_ancestor(exp.Select)
    if scope is None:
        return None
    for source in select_sources(scope):
        if qualifier and source.alias_or_name != qualifier:
            continue
        found = _from_source(name, source, scope, comments, depth)
        if found is not None:
            return found
    return None


def _from_source(
    name: str, source: exp.Expression, scope: exp.Select, comments: CommentLookup, depth: int
) -> str | None:
    if isinstance(source, exp.Table) and isinstance(source.this, exp.Anonymous):
        is_reader = str(source.this.this).lower() == READ_MEDIA
        return "media" if is_reader and name.lower() == "path" else None
    inner = _query_behind(source, scope)
    if inner is not None:
        return _from_projection(name, inner, comments, depth)
    if isinstance(source, exp.Table):
        comment = comments(source.db or None, source.name, name)
        return _kind_from_comment(comment)
    return None


def _from_projection(
    name: str, query: exp.Expression, comments: CommentLookup, depth: int
) -> str | None:
    """Which expression of a subquery or CTE produces `name`, and what it reads."""
    if isinstance(query, exp.Union):
        return _from_projection(name, query.left, comments, depth + 1)
    if not isinstance(query, exp.Select):
        return None
    for projection in query.expressions:
        if isinstance(projection, exp.Star) or (
            isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
        ):
            found = _trace_column(name, "", query, comments, depth + 1)
            if found is not None:
                return found
            continue
        if projection.alias_or_name != name:
            continue
        inner, marker = unwrap_marker(projection.unalias())
        if marker:
            return marker
        if isinstance(inner, exp.Column):
            return _trace_column(inner.name, inner.table, query, comments, depth + 1)
        return None
    return None


def _query_behind(source: exp.Expression, scope: exp.Select) -> exp.Expression | None:
    """The query a FROM item stands for: a derived table's, or a CTE's of that name."""
    if isinstance(source, exp.Subquery):
        return source.this
    if isinstance(source, exp.Table) and not source.db:
        ancestor: exp.Expression | None = scope
        while ancestor is not None:
            with_ = with_clause(ancestor)
            if with_ is not None:
                for cte in with_.expressions:
                    if cte.alias == source.name:
                        return cte.this
            ancestor = ancestor.parent
    return None


def _kind_from_comment(comment: str | None) -> str | None:
    if not comment:
        return None
    text = comment.strip().lower()
    if text == MEDIA_COMMENT:
        return "media"
    if text.startswith(MEDIA_COMMENT + ":") and text[6:] in ("image", "audio"):
        return text[6:]
    return None
