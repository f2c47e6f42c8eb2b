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

from quarrydb.engine.database import INTERNAL_SCHEMA

TABLE = f"{INTERNAL_SCHEMA}.result_cache"


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def call_key(function: str, model: str, revision: str, options: dict[str, Any]) -> str:
    payload = json.dumps([function, model, revision, options], sort_keys=True, default=str)
    return content_hash(payload.encode("utf-8"))


class ResultCache:
    """Lookups and inserts in bulk: one query per stage, never one per value."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._writable: bool | None = None  # asked of DuckDB at the first store

    def writable(self) -> bool:
        """False on a database opened read-only: its results are computed, not kept."""
        if self._writable is None:
            self._writable = not self.con.execute(
                "SELECT readonly FROM duckdb_databases() WHERE database_name ="
                " current_database()").fetchall()[0][0]
        return self._writable

    def lookup(self, key: str, hashes: Iterable[str]) -> dict[str, bytes]:
        wanted = pa.table({"input_hash": pa.array(list(hashes), type=pa.string())})
        if wanted.num_rows == 0:
            return {}
        self.con.register("__quarry_cache_probe", wanted)
        try:
            rows = self.con.execute(
                f"SELECT c.input_hash, c.value FROM {TABLE} c"
                " JOIN __quarry_cache_probe p USING (input_hash) WHERE c.call_key = ?",
                [key],
            ).fetchall()
        except duckdb.CatalogException:
            if self.writable():
                raise
            return {}  # read-only, and nothing was ever cached here (an older layout)
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
            self.con.execute(f"INSERT OR IGNORE INTO {TABLE} SELECT * FROM __quarry_cache_new")
        finally:
            self.con.unregister("__quarry_cache_new")
