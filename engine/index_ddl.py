"""The engine's own front end for vector-index statements, which no SQL parser knows:

    CREATE INDEX [IF NOT EXISTS] name ON table USING faiss (expression) [WITH (key = value, ...)]
    DROP INDEX [IF EXISTS] name
    SHOW INDEXES
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from quarrydb.engine.statements import without_comments

NAME_MAX_BYTES = 128
_NAME = r'(?:\w+|"[^"]+")'  # an identifier, bare or quoted
_INDEX_NAME = r'(?:\w+|"[\w -]+")'  # also a folder's name: no "/" nor ".."
_CREATE = re.compile(
    rf"^\s*CREATE\s+INDEX\s+(?P<exists>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_INDEX_NAME})\s+ON\s+"
    rf"(?P<table>{_NAME}(?:\.{_NAME})*)\s+USING\s+faiss\s*\((?P<expression>.+?)\)\s*"
    r"(?:WITH\s*\((?P<options>[^)]*)\))?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_USES_FAISS = re.compile(r"^\s*CREATE\s+INDEX\b.*\bUSING\s+faiss\b", re.IGNORECASE | re.DOTALL)
_DROP = re.compile(
    rf"^\s*DROP\s+INDEX\s+(?P<exists>IF\s+EXISTS\s+)?(?P<name>{_INDEX_NAME})\s*;?\s*$",
    re.IGNORECASE)
_SHOW = re.compile(r"^\s*SHOW\s+INDEXES\s*;?\s*$", re.IGNORECASE)
_OPTION = re.compile(r"^\s*(\w+)\s*=\s*(?:'([^']*)'|([-+\w.]+))\s*$")


@dataclass
class CreateIndex:
    name: str
    table: str
    expression: str
    if_not_exists: bool = False
    options: dict[str, str] = field(default_factory=dict)


@dataclass
class DropIndex:
    name: str
    if_exists: bool = False


class ShowIndexes:
    pass


def parse(text: str) -> CreateIndex | DropIndex | ShowIndexes | None:
    """The index statement in `text`, or None when it is not one (DuckDB handles it)."""
    text = without_comments(text)
    if _SHOW.match(text):
        return ShowIndexes()
    drop = _DROP.match(text)
    if drop:
        return DropIndex(drop.group("name").strip('"'), bool(drop.group("exists")))
    create = _CREATE.match(text)
    if create:
        name = create.group("name").strip('"')
        if len(name.encode()) > NAME_MAX_BYTES:
            raise ValueError(f"an index name has at most {NAME_MAX_BYTES} bytes (it names the"
                             f" index's folder), got {len(name.encode())}")
        return CreateIndex(
            name, create.group("table"),
            create.group("expression").strip(),
            bool(create.group("exists")), _options(create.group("options") or ""),
        )
    if _USES_FAISS.match(text):
        raise ValueError(
            "malformed CREATE INDEX: expected CREATE INDEX name ON table USING faiss"
            " (expression) [WITH (kind = 'hnsw', m = 32, metric = 'cosine')]"
        )
    return None


def _options(text: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for part in filter(str.strip, text.split(",")):
        match = _OPTION.match(part)
        if not match:
            raise ValueError(f"malformed index option {part.strip()!r}: expected key = value")
        key = match.group(1).lower()
        if key in options:
            raise ValueError(f"index option {key} is given twice")
        options[key] = match.group(2) if match.group(2) is not None else match.group(3)
    return options
