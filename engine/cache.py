"""The result cache: model outputs kept in the database, keyed by what determines them.

Key: (call key = function, model name and revision, options) x (content hash of the input).
A path is never part of a key, so the same content under two names is computed once and a
changed file is computed again. Failed values are never stored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import duckdb
import pyarrow as pa

from quarrydb.engine.database import INTERNAL_SCHEMA, internal_table

# The database holding the cache: the first attached that has one, which is the one quarrydb
# opened (attached first), whatever database a USE made the one in use since.
_WHERE = f"""
SELECT t.database_name, d.readonly FROM duckdb_tables() t
JOIN duckdb_databases() d ON d.database_oid = t.database_oid
WHERE t.schema_name = '{INTERNAL_SCHEMA}' AND t.table_name = 'result_cache'
ORDER BY t.database_oid LIMIT 1
"""


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def call_key(function: str, model: str, revision: str, options: dict[str, Any]) -> str:
    payload = json.dumps([function, model, revision, options], sort_keys=True, default=str)
    return content_hash(payload.encode("utf-8"))


class ResultCache:
    """Lookups and inserts in bulk: one query per stage, never one per value."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._where: tuple[str | None, bool] | None = None  # asked of DuckDB at first use

    def _table(self) -> str | None:
        """The cache table, qualified; None where the database has none (read-only, of an
        older layout)."""
        return self._located()[0]

    def writable(self) -> bool:
        """False on a database opened read-only: its results are computed, not kept."""
        return self._located()[1]

    def _located(self) -> tuple[str | None, bool]:
        if self._where is None:
            found = self.con.execute(_WHERE).fetchall()
            self._where = ((internal_table(found[0][0], "result_cache"), not found[0][1])
                           if found else (None, False))
        return self._where

    def lookup(self, key: str, hashes: Iterable[str]) -> dict[str, bytes]:
        wanted = pa.table({"input_hash": pa.array(list(hashes), type=pa.string())})
        table = self._table()
        if wanted.num_rows == 0 or table is None:
            return {}  # (None: read-only, and nothing was ever cached here, an older layout)
        self.con.register("__quarry_cache_probe", wanted)
        try:
            rows = self.con.execute(
                f"SELECT c.input_hash, c.value FROM {table} c"
                " JOIN __quarry_cache_probe p USING (input_hash) WHERE c.call_key = ?",
                [key],
            ).fetchall()
        finally:
            self.con.unregister("__quarry_cache_probe")
        return dict(rows)

    def store(self, key: str, items: dict[str, bytes]) -> None:
        if not items or not self.writable():
            return
        batch = pa.table(
            {
                "call_key": pa.array([key] * len(items), type=pa.string()),
                "input_hash": pa.array(list(items), type=pa.string()),
                "value": pa.array(list(items.values()), type=pa.binary()),
            }
        )
        self.con.register("__quarry_cache_new", batch)
        try:
            self.con.execute(
                f"INSERT OR IGNORE INTO {self._table()} SELECT * FROM __quarry_cache_new")
        finally:
            self.con.unregister("__quarry_cache_new")
