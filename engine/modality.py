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
READ_MEDIA_COLUMNS = ("path", "kind", "size", "modified")  # in the order read_media gives them

# (schema or None, table, column) -> the column's comment, or None; the column by name, or by
# its position in the table (from 0) where an alias list renamed it (`FROM photos p(file)`).
CommentLookup = Callable[[str | None, str, "str | int"], str | None]
# A column as a query's FROM item gives it: by name, or by position where an alias renamed it.
ColumnKey = str | int


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
        key = _through_alias_list(name, _alias_columns(source.args.get("alias")))
        found = _from_source(key, source, scope, comments, depth)
        if found is not None:
            return found
    return None


def _from_source(
    key: ColumnKey, source: exp.Expression, scope: exp.Select, comments: CommentLookup,
    depth: int
) -> str | None:
    if isinstance(source, exp.Table) and isinstance(source.this, exp.Anonymous):
        is_reader = str(source.this.this).lower() == READ_MEDIA
        column = _by_position(key, READ_MEDIA_COLUMNS)
        return "media" if is_reader and column == "path" else None
    behind = _query_behind(source, scope)
    if behind is not None:
        query, cte_columns = behind
        if isinstance(key, str):  # a CTE's own alias list renames its columns too
            key = _through_alias_list(key, cte_columns)
        return _from_projection(key, query, comments, depth)
    if isinstance(source, exp.Table):
        comment = comments(source.db or None, source.name, key)
        return _kind_from_comment(comment)
    return None


def _from_projection(
    key: ColumnKey, query: exp.Expression, comments: CommentLookup, depth: int
) -> str | None:
    """Which expression of a subquery or CTE produces the column, and what it reads."""
    if isinstance(query, exp.SetOperation):  # media where any branch's column is
        return (_from_projection(key, query.left, comments, depth + 1)
                or _from_projection(key, query.right, comments, depth + 1))
    if not isinstance(query, exp.Select):
        return None
    for position, projection in enumerate(query.expressions):
        if isinstance(projection, exp.Star) or (
            isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
        ):
            if isinstance(key, int):
                return None  # the columns before it are not known here
            found = _trace_column(_renamed_by_star(key, projection), "", query, comments,
                                  depth + 1)
            if found is not None:
                return found
            continue
        if key != position and (isinstance(key, int) or projection.alias_or_name != key):
            continue
        inner, marker = unwrap_marker(projection.unalias())
        if marker:
            return marker
        if isinstance(inner, exp.Column):
            return _trace_column(inner.name, inner.table, query, comments, depth + 1)
        return None
    return None


def _alias_columns(alias: exp.Expression | None) -> list[str]:
    """The column names of an alias list: `x(p, q)` -> ['p', 'q']."""
    if not isinstance(alias, exp.TableAlias):
        return []
    return [column.name for column in alias.columns]


def _through_alias_list(name: str, renamed: list[str]) -> ColumnKey:
    """A column named outside a FROM item with an alias list, as the item itself gives it: the
    n names rename its first n columns, so one of them is a position; any other name is the
    item's own (a name the list renamed away is DuckDB's error to give)."""
    lowered = [column.lower() for column in renamed]
    if name.lower() in lowered:
        return lowered.index(name.lower())
    return name


def _by_position(key: ColumnKey, columns: tuple[str, ...]) -> str | None:
    if isinstance(key, int):
        return columns[key] if key < len(columns) else None
    return key.lower()


def _renamed_by_star(name: str, star: exp.Expression) -> str:
    """`* RENAME (path AS p)` gives `p` from `path`."""
    star = star.this if isinstance(star, exp.Column) else star
    for rename in star.args.get("rename") or []:
        if isinstance(rename, exp.Alias) and rename.alias.lower() == name.lower():
            return rename.this.name
    return name


def _query_behind(source: exp.Expression, scope: exp.Select
                  ) -> tuple[exp.Expression, list[str]] | None:
    """The query a FROM item stands for, with the alias list a CTE gives its columns: a
    derived table's, or a CTE's of that name."""
    if isinstance(source, exp.Subquery):
        return source.this, []
    if isinstance(source, exp.Table) and not source.db:
        ancestor: exp.Expression | None = scope
        while ancestor is not None:
            with_ = with_clause(ancestor)
            if with_ is not None:
                for cte in with_.expressions:
                    if cte.alias == source.name:
                        return cte.this, _alias_columns(cte.args.get("alias"))
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
