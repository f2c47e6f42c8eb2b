"""Vector indexes in the database: created, kept current, persisted crash-safely, rebuilt.

DuckDB is the source of truth. `_quarry.vector_indexes` describes each index and the checksum
and generation of its FAISS file; `_quarry.index_rows` maps each index id to a DuckDB row id and
the hash of the row's indexed input. Keeping current is a diff of that map against the table
(rows whose input hash changed, appeared or vanished), run once after the database is opened —
which catches writes by other tools — and after any write through quarrydb. New rows are
embedded through the engine, so their vectors come from the result cache when they can; a
rebuild therefore runs no model for rows seen before.

Crash safety: the FAISS file is written atomically (temp file, fsync, rename) before the DuckDB
transaction that records its checksum commits. A crash between the two leaves a file whose
checksum does not match the catalog: it is detected on load and the index is rebuilt.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from sqlglot import exp

from quarrydb.engine.atomic import atomic_write_bytes
from quarrydb.engine.atomic import checksum as checksum_of
from quarrydb.engine.database import Database, internal_table
from quarrydb.engine.errors import ProgrammingError, without_sql_shown
from quarrydb.engine.faults import crash_point
from quarrydb.engine.index_ddl import CreateIndex
from quarrydb.engine.ordering_facts import OrderingFacts
from quarrydb.engine.pending_diffs import NotedWrite, PendingDiff
from quarrydb.engine.sqltree import (
    DIALECT,
    foreign_columns,
    table_key,
    to_sql,
    without_qualifiers,
)
from quarrydb.engine.table_locations import Location, TableLocations, sql_name
from quarrydb.engine.vector_index import IndexOptions, VectorIndex, default_kind, unrankable

TABLES = """
CREATE TABLE IF NOT EXISTS {indexes} (
    name VARCHAR PRIMARY KEY, table_name VARCHAR NOT NULL, expression VARCHAR NOT NULL,
    key_expression VARCHAR NOT NULL, options VARCHAR NOT NULL, dim INTEGER NOT NULL,
    checksum VARCHAR NOT NULL, next_id BIGINT NOT NULL, tombstones VARCHAR NOT NULL,
    deltas VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS {rows} (
    index_name VARCHAR NOT NULL, vid BIGINT NOT NULL, row_id BIGINT NOT NULL,
    key_hash UBIGINT NOT NULL
);
"""
REBUILD_TOMBSTONE_SHARE = 0.25
# Changes kept as small files beside the snapshot; one more folds them into one file while
# they hold few rows (a snapshot rewrite costs 6-12 s at 1M rows: single-row INSERTs paid it
# every 32 rows), or rewrites the snapshot when a fold would cost near as much (1% INSERTs).
MAX_DELTAS = 32
FOLD_MAX_SHARE = 0.1
# The rows changes may hold before the snapshot is rewritten, as a share of its rows. New
# vectors are searched exactly beside a flat or HNSW index until then: for flat that is what the
# index does anyway, so only the rewrite (the whole snapshot: 5-9 s at 1M x 384) is weighed;
# beside a graph each held vector costs every search time (at 1M x 384 on 2 cores: about 2 ms
# per 10,000 held, against a 2 ms search; benchmarks/fresh_vectors.py). IVF takes them into its
# lists at once.
MAX_DELTA_SHARE = {"flat": 1.0, "ivf": 1.0, "hnsw": 0.02}
SYNC_ATTEMPTS = 3

# Runs SQL through the engine (so model calls work) and returns its rows as Arrow.
RunSql = Callable[[str], pa.Table]


class IndexOutOfUse(ProgrammingError):
    """An index that cannot answer for its table as it is: searches run exact (DuckDB's answer,
    or its error) until a write brings it back. `index_unchanged`: raised before the loaded
    index was changed, which then stays loaded. `why`: what EXPLAIN says of it."""

    index_unchanged = False
    why = "the index is out of use"


class UnrankableRows(IndexOutOfUse):
    """Rows an index cannot hold as DuckDB ranks them: a NaN or an infinity under `ip` or
    `l2`, a vector of another length. CREATE INDEX refuses them; written later, they leave the
    index out of use until they are fixed."""

    why = "the index cannot hold every row"


class IndexBehindTable(IndexOutOfUse):
    """Rows changed since the index was saved (by another tool), on a database open read-only:
    the index cannot be brought up to date, so it is not used (a rebuild waits for a
    connection that may write)."""

    why = "the index is behind its table, and a read-only connection cannot update it"
    index_unchanged = True


@dataclass
class IndexInfo:
    name: str
    table: str
    expression: str
    key_expression: str
    options: IndexOptions
    dim: int
    checksum: str
    next_id: int
    tombstones: list[int]
    deltas: list[list]  # [file name, checksum, rows] of each change saved since the snapshot
    location: Location = ("", "", "")  # where the table is: see _info

    @property
    def source(self) -> str:
        """The table in the engine's SQL: the same one whatever database or schema is in use."""
        return sql_name(self.location)


class VectorCatalog:
    """The indexes of one database, as seen from one session's connection."""

    def __init__(self, database: Database, con: duckdb.DuckDBPyConnection, run_sql: RunSql):
        self.database = database
        self.con = con
        self.run_sql = run_sql
        self.in_transaction = False  # this connection's: BEGIN ... COMMIT (see Session)
        self.indexes_table = internal_table(database.name, "vector_indexes")
        self.rows_table = internal_table(database.name, "index_rows")
        self.locations = TableLocations(con, lambda: database.catalog_generation)
        self.ordering = OrderingFacts(con, lambda: database.catalog_generation)
        if database.read_only:
            return  # the tables are there (or no index ever was); nothing is dropped
        con.execute(TABLES.format(indexes=self.indexes_table, rows=self.rows_table))
        if not database.orphans_dropped:
            with database.lock:
                database.orphans_dropped = True
                self.drop_orphans()
                self.drop_replaced()  # notes the tables as they are now

    # --- DDL -----------------------------------------------------------------------------------

    def _outside_transactions(self, what: str) -> None:
        if self.in_transaction:
            raise ProgrammingError(f"{what} cannot run inside a transaction: an index changes"
                                   " in a transaction of its own (COMMIT or ROLLBACK first)")

    def _writable(self, what: str) -> None:
        if self.database.read_only:
            raise ProgrammingError(f"{what} cannot run: the database is open read-only")

    def create(self, statement: CreateIndex) -> None:
        self._writable("CREATE INDEX")
        self._outside_transactions("CREATE INDEX ... USING faiss")
        if self.info(statement.name) is not None:
            if statement.if_not_exists:
                return
            raise ProgrammingError(f"index {statement.name!r} already exists")
        if self.con.execute("SELECT count(*) FROM duckdb_indexes() WHERE lower(index_name) ="
                            " lower(?)", [statement.name]).fetchall()[0][0]:
            raise ProgrammingError(f"an index named {statement.name} exists already (DuckDB's"
                                   " own): DROP INDEX would not know which to drop")
        table = statement.table
        try:
            expression = sqlglot.parse_one(statement.expression, dialect=DIALECT)
        except sqlglot.errors.ParseError:
            raise ProgrammingError(f"cannot index {statement.expression} on {table}:"
                                   f" {_expression_problem(statement.expression)}") from None
        _refuse_other_qualifiers(expression, table)
        try:
            rows = self.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
            hidden = self._hides_row_ids(table)
        except duckdb.Error as exc:
            raise ProgrammingError(f"cannot index {statement.expression} on {table}:"
                                   f" {without_sql_shown(str(exc))}") from None
        if hidden:
            raise ProgrammingError(
                f"cannot index {table}: its column named rowid hides DuckDB's row ids, which"
                " an index maps its vectors to (rename the column)")
        location = self._indexable_location(table)
        options = _options(statement.options, rows)
        info = IndexInfo(statement.name, _kept_name(table, location, self.database.name),
                         to_sql(without_qualifiers(expression)), to_sql(_key_of(expression)),
                         options, 0, "", 0, [], [], location)
        try:
            self._rebuild(info)
        except duckdb.Error as exc:  # e.g. a view, or a column the table lacks
            raise ProgrammingError(f"cannot index {statement.expression} on {table}:"
                                   f" {without_sql_shown(str(exc))}") from None
        self.drop_replaced()  # notes the new index's table

    def _indexable_location(self, table: str) -> Location:
        """Where the table CREATE INDEX names is; refused where an index could not follow it."""
        location = self.locations.of(table)
        if location is None:
            raise ProgrammingError(f"cannot index {table}: it is not a table (a view or a"
                                   " table function has no row ids to map vectors to)")
        if location[0] == "temp":
            raise ProgrammingError(
                f"cannot index {table}: it is a temporary table, which lives in one"
                " connection, where an index is saved with the database (index a table)")
        if location[0] != self.database.name.lower():
            raise ProgrammingError(
                f"cannot index {table}: it is in database {location[0]}, and an index is"
                f" saved with the database it indexes ({self.database.name})")
        return location

    def drop(self, name: str, if_exists: bool) -> bool:
        """Drop a vector index; False when there is none of that name (DuckDB's turn)."""
        info = self.info(name)
        if info is None:
            return False
        self._writable("DROP INDEX")
        self._outside_transactions("DROP INDEX")
        name = info.name  # as created: names compare without case, as DuckDB's do
        self.con.execute("BEGIN TRANSACTION")
        self.con.execute(f"DELETE FROM {self.rows_table} WHERE index_name = ?", [name])
        self.con.execute(f"DELETE FROM {self.indexes_table} WHERE name = ?", [name])
        self.con.execute("COMMIT")
        self.database.index_infos = None
        self.database.loaded_indexes.pop(name, None)
        self.database.index_table_oids.pop(name, None)  # a new index may take the name
        self.database.forget_syncs(name)
        folder = self._folder(name)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        return True

    def drop_orphans(self) -> None:
        """Indexes whose table is gone (DROP TABLE, DROP SCHEMA ... CASCADE, or another tool)
        are dropped with it, as DuckDB drops its own."""
        if not self.all() or self.in_transaction or self.database.read_only:
            return  # in a transaction: at COMMIT (a ROLLBACK brings the table back)
        for info in list(self.all()):
            if not self._table_exists(info.source):
                self.drop(info.name, if_exists=True)

    def drop_replaced(self) -> None:
        """Indexes whose table was replaced (CREATE OR REPLACE TABLE, in any syntax DuckDB
        takes) are dropped with the table they indexed, as DuckDB drops its own: the new table
        is another one, perhaps of other vectors. A table is told from its replacement by
        DuckDB's object id, kept in memory only: DuckDB gives ids anew when a file is opened."""
        if not self.all() or self.in_transaction or self.database.read_only:
            return  # in a transaction: at COMMIT (a ROLLBACK keeps the table)
        seen, now = self.database.index_table_oids, self._table_oids()
        for name, (key, oid) in list(now.items()):
            if name in seen and seen[name][0] == key and oid is not None and seen[name][1] != oid:
                self.drop(name, if_exists=True)
                del now[name]
        self.database.index_table_oids = {n: v for n, v in now.items() if v[1] is not None}

    def _table_oids(self) -> dict[str, tuple[Location, int | None]]:
        """Each index's table: where it is (database, schema, name) and DuckDB's object id for
        it (None: no table there)."""
        oids = {(d.lower(), s.lower(), t.lower()): oid for d, s, t, oid in self.con.execute(
            "SELECT database_name, schema_name, table_name, table_oid FROM duckdb_tables()"
        ).fetchall()}
        return {info.name: (info.location, oids.get(info.location)) for info in self.all()}

    def _table_exists(self, table: str) -> bool:
        """Whether the name finds a table, as DuckDB resolves it (a temporary table first)."""
        try:
            self.con.execute(f"SELECT 1 FROM {table} LIMIT 0").fetchall()
        except duckdb.CatalogException:
            return False
        return True

    def index_inputs(self) -> dict[str, str | None]:
        """Each index's input as its table has it now: its type; None where the index could no
        longer read it (no table, no column, a column named rowid hiding the row ids). Compared
        before and after an ALTER TABLE (see Session._run_alter)."""
        found: dict[str, str | None] = {}
        for info in self.all():
            try:
                key = self.con.execute(
                    f"SELECT {info.key_expression} FROM {info.source} LIMIT 0").description[0]
                hidden = self._hides_row_ids(info.source)
            except duckdb.Error:
                found[info.name] = None
                continue
            found[info.name] = None if hidden else str(key[1])
        return found

    def _hides_row_ids(self, table: str) -> bool:
        """Whether the table has a column named rowid: it hides DuckDB's row ids."""
        columns = self.con.execute(f"SELECT * FROM {table} LIMIT 0").description
        return any(column[0].lower() == "rowid" for column in columns)

    def show(self) -> pa.Table:
        rows = []
        with self.database.lock:  # syncs each index (see Session._one_at_a_time)
            self.drop_orphans()
            indexes = [(info, self._size_or_none(info.name)) for info in self.all()]
        for info, size in indexes:
            rows.append({"name": info.name, "table": info.table, "expression": info.expression,
                         "kind": info.options.kind, "metric": info.options.metric,
                         "rows": size, "dim": info.dim,
                         "options": json.dumps(asdict(info.options))})
        schema = pa.schema([("name", pa.string()), ("table", pa.string()),
                            ("expression", pa.string()), ("kind", pa.string()),
                            ("metric", pa.string()), ("rows", pa.int64()), ("dim", pa.int64()),
                            ("options", pa.string())])
        return pa.Table.from_pylist(rows, schema=schema)

    def _size_or_none(self, name: str) -> int | None:
        """The rows an index holds; None where it cannot be brought up to date (its column
        was dropped by another tool): listed, so that it can be seen and dropped. Inside a
        transaction: as last brought up to date (an index changes in a transaction of its
        own)."""
        if self.in_transaction:
            loaded = self.database.loaded_indexes.get(name)
            return None if loaded is None else loaded.size
        try:
            return self.current(name).size
        except ProgrammingError:
            return None

    # --- lookups -------------------------------------------------------------------------------

    def all(self) -> list[IndexInfo]:
        """Every index (read once, then kept until an index is created, changed or dropped)."""
        if self.database.index_infos is None:
            try:
                rows = self.con.execute(
                    f"SELECT * FROM {self.indexes_table} ORDER BY name").fetchall()
            except duckdb.CatalogException:
                if not self.database.read_only:
                    raise
                rows = []  # read-only, and no index was ever created here
            self.database.index_infos = [_info(row, self.database.name) for row in rows]
        return self.database.index_infos

    def indexes_on(self, table: str) -> list[str]:
        """The indexes on `table`, named as a statement writes it (`items`, `main.items`, ...)
        from the database and schema in use."""
        if not self.all():
            return []
        if self.in_transaction:  # by name alone: DuckDB's lookup, were it to fail, would
            # abort the transaction; an index on another table of the name diffs for nothing
            name = exp.to_table(table, dialect=DIALECT).name.lower()
            return [i.name for i in self.all() if i.location[2] == name]
        location = self.locations.of(table)
        return [i.name for i in self.all() if i.location == location]

    def diffs_whole(self, table: str) -> bool:
        """Whether every index on `table` is left to diff the whole table at its next use:
        then which rows a write touches does not matter."""
        pending = self.database.pending_diffs
        return all(name not in self.database.synced_indexes
                   and (name not in pending or pending[name].start == 0)
                   for name in self.indexes_on(table))

    def info(self, name: str) -> IndexInfo | None:
        """The index's description, from the cache `all` keeps (no query on the search path)."""
        return next((i for i in self.all() if i.name.lower() == name.lower()), None)

    # --- keeping current -----------------------------------------------------------------------

    def current(self, name: str) -> VectorIndex:
        """The loaded index, verified against the catalog and synced with its table."""
        info = self.info(name)
        if info is None:
            raise ProgrammingError(f"no vector index named {name!r}")
        try:
            return self._current(info)
        except duckdb.Error as exc:  # its table or column changed under it (another tool)
            raise ProgrammingError(
                f"vector index {info.name} on {info.table} cannot be brought up to date:"
                f" {exc} (DROP INDEX {info.name})") from None

    def _current(self, info: IndexInfo) -> VectorIndex:
        name = info.name
        if name in self.database.out_of_use:  # no write since the diff that found it
            found = self.database.out_of_use[name]
            again = type(found)(str(found))
            again.index_unchanged = True
            raise again
        if name not in self.database.loaded_indexes:
            self._forget_if_checkpointed()  # before a rebuild: it reads the row ids as they are
            loaded = self._load(info)
            if loaded is None and self.database.read_only:
                behind = IndexBehindTable("its saved file is missing, damaged or stale")
                self.database.out_of_use[name] = behind
                raise behind
            if loaded is None:  # missing, damaged or stale file: rebuild from DuckDB
                self._rebuild(info)
            else:
                self.database.loaded_indexes[name] = loaded
        for _ in range(SYNC_ATTEMPTS):  # a sync's own commit may checkpoint: then once more
            self._forget_if_checkpointed()
            if name in self.database.synced_indexes:
                break
            pending = self.database.pending_diffs.pop(name, None) or PendingDiff(0)
            loaded = self.database.loaded_indexes  # a sync may rebuild: a new index there
            with self._dropped_if_failed(name):
                self._sync(info, loaded[name], pending.start, pending.rows())
                self._count_nulls(info)
                if pending.start and self._indexable_rows(info) != loaded[name].size:
                    self._sync(info, loaded[name])  # not expected: the rows noted missed one
                    self._count_nulls(info)
            self.database.synced_indexes.add(name)
        return self.database.loaded_indexes[name]

    @contextlib.contextmanager
    def _dropped_if_failed(self, name: str) -> Iterator[None]:
        """A sync that fails part way may have changed the index and its description in
        memory, and not its catalog: both are dropped, to be read again from the catalog and
        the files it names (and diffed) when next used."""
        try:
            yield
        except IndexOutOfUse as exc:
            if not exc.index_unchanged:
                self.database.loaded_indexes.pop(name, None)
                self.database.index_infos = None
            self.database.forget_syncs(name)
            if exc.index_unchanged:
                self.database.out_of_use[name] = exc
            raise
        except BaseException:
            self.database.loaded_indexes.pop(name, None)
            self.database.index_infos = None
            self.database.forget_syncs(name)
            raise

    def _forget_if_checkpointed(self, undiffed_deletes: Collection[str] = ()) -> None:
        """A DuckDB checkpoint compacts deleted rows, which moves row ids, and it may run at any
        commit (once the log passes checkpoint_threshold), ours included: after one, an index
        is diffed against its table again (moved rows are re-pointed, see _moved_rows), from
        the first row that may have moved (see _first_movable_row). `undiffed_deletes`: the
        indexes whose table a write not yet diffed may have deleted rows of (all writes but a
        plain INSERT): diffed whole."""
        mark = self.database.file_mark()
        if mark == self.database.checkpoint_mark:
            return
        self.database.checkpoint_mark = mark
        pending = self.database.pending_diffs
        for name in self.database.synced_indexes | pending.keys():  # may reach lower now
            start = 0 if name in undiffed_deletes else self._first_movable_row(name)
            if start is None and name not in pending:
                continue
            self.database.synced_indexes.discard(name)
            diff = pending.setdefault(name, PendingDiff(start or 0))
            # Rows noted before the checkpoint may have moved since, and those after a row
            # deleted by a write not yet diffed did (the index has no gap for it yet).
            diff.fold()
            if start is not None:
                diff.start = min(diff.start, start)

    def _first_movable_row(self, name: str) -> int | None:
        """The lowest row id a checkpoint may have moved; None: it cannot have moved any.

        A checkpoint compacts deleted rows, keeping the order of the others: only rows after
        the first deleted one move. The index knows every row before its own first gap (a
        delete it saw leaves one, a NULL input too), so none of those was deleted: rows from
        that gap on are diffed, not the whole table. With no gap in the index nor in the
        table's row ids, nothing is left to compact: no diff at all (rows appended meanwhile
        are the usual diff's). A full diff hashes every row (about 1.5 s at 1M rows); a table
        that only grows would otherwise pay it at every checkpoint (DuckDB's every 16 MB of
        log), and one with a deleted tail at every checkpoint after."""
        info, index = self.info(name), self.database.loaded_indexes.get(name)
        if info is None or index is None:
            return 0
        known = np.sort(index.rows[index.rows >= 0])
        gaps = np.flatnonzero(known != np.arange(len(known)))
        start = int(gaps[0]) if len(gaps) else len(known)
        rows, last = self.con.execute(
            f"SELECT count(*), coalesce(max(rowid), -1) FROM {info.source}").fetchall()[0]
        return None if start == len(known) and rows == last + 1 else start

    def null_rows(self, name: str) -> int:
        """Rows of the table whose indexed input is NULL (not in the index), as of the last sync."""
        return self.database.index_null_rows.get(name, 0)

    def _count_nulls(self, info: IndexInfo) -> None:
        sql = f"SELECT count(*) FROM {info.source} WHERE ({info.key_expression}) IS NULL"
        self.database.index_null_rows[info.name] = self.con.execute(sql).fetchall()[0][0]

    def _load(self, info: IndexInfo) -> VectorIndex | None:
        folder = self._folder(info.name)
        if folder is None:
            return None  # in memory: nothing persisted to load
        try:
            index, checksum = VectorIndex.load(folder / "index.faiss", info.dim, info.options,
                                               set(info.tombstones))
            if checksum != info.checksum:
                return None
            for file_name, delta_checksum, _ in info.deltas:
                data = (folder / file_name).read_bytes()
                if checksum_of(data) != delta_checksum:
                    return None
                index.apply_delta(data)
        except Exception:  # a missing or unreadable file is stale data, rebuilt from DuckDB
            return None
        index.tombstones = set(info.tombstones)
        mapping = self.con.execute(
            f"SELECT vid, row_id FROM {self.rows_table} WHERE index_name = ?",
            [info.name]).fetchnumpy()
        index.set_rows(mapping["vid"].astype(np.int64), mapping["row_id"].astype(np.int64))
        return index

    # --- writes through quarrydb: only the rows a statement touches are diffed -----------------

    def before_write(self, table: str, rows_sql: str | None, appends_only: bool
                     ) -> NotedWrite:
        """Note what a write to `table` may touch: the rows `rows_sql` selects (UPDATE / DELETE)
        and every row added after the current last row id. `appends_only`: a plain INSERT,
        which deletes nothing."""
        names = self.indexes_on(table)
        if not names:  # no index reads this table: nothing to keep current
            return NotedWrite(names, 0, appends_only=appends_only)
        last = self.con.execute(f"SELECT coalesce(max(rowid), -1) FROM {table}").fetchall()[0][0]
        noted = NotedWrite(names, last + 1, appends_only=appends_only,
                           counted=rows_sql is not None)
        if rows_sql is not None:
            noted.touched = self.con.execute(rows_sql).fetchnumpy()["rowid"].astype(np.int64)
        return noted

    def after_write(self, noted: NotedWrite) -> None:
        """Diff just the touched rows of each index that was current before the write; the
        whole table if a checkpoint ran meanwhile (see _forget_if_checkpointed)."""
        was_current = [n for n in noted.names
                       if n in self.database.synced_indexes and n in self.database.loaded_indexes]
        self._add_to_pending(noted)
        self._forget_if_checkpointed(noted.deleting_from())
        for name in was_current:
            info = self.info(name)
            if info is None:
                continue
            try:
                if name in self.database.synced_indexes:
                    with self._dropped_if_failed(name):
                        self._sync(info, self.database.loaded_indexes[name], noted.start,
                                   noted.touched)
                    self._count_nulls(info)
                    if self._indexable_rows(info) != self.database.loaded_indexes[name].size:
                        self.database.forget_syncs(name)  # not expected: diff it all
                self.current(name)  # a full diff, where the index is no longer known current
            except UnrankableRows:
                continue  # the write stands, as in DuckDB; searches run exact until fixed

    def after_write_later(self, noted: NotedWrite) -> None:
        """Leave the rows a write touched to the next search, which diffs each index on them
        (and on every row added: they come after the last one before the write). For writes
        with parameters: executemany sends one per row, and a diff after each (about 45 ms
        for one row) would cost more than one diff of them all."""
        for name in noted.names:
            if name in self.database.synced_indexes:
                self.database.synced_indexes.discard(name)
                self.database.pending_diffs[name] = PendingDiff(noted.start)
        self._add_to_pending(noted)
        self._forget_if_checkpointed(noted.deleting_from())

    def _add_to_pending(self, noted: NotedWrite) -> None:
        """An index left to diff later (after a checkpoint, or a write left for later) is
        diffed on this write's rows too; one a row it cannot rank left out of use is tried
        again (the write may have fixed the row)."""
        for name in noted.names:
            self.database.out_of_use.pop(name, None)
            if name in self.database.pending_diffs:
                self.database.pending_diffs[name].add(noted)

    def _indexable_rows(self, info: IndexInfo) -> int:
        return self.con.execute(
            f"SELECT count(*) FROM {info.source} WHERE ({info.key_expression}) IS NOT NULL"
        ).fetchall()[0][0]

    def _sync(self, info: IndexInfo, index: VectorIndex, start: int = 0,
              touched: np.ndarray | None = None) -> None:
        """Apply the table's changes since the index last saw it: a diff, not a rebuild.

        A write through quarrydb knows which rows it may have touched: the diff is limited to
        the rows from `start` on and the rows `touched` (`start` 0: the whole table)."""
        every = f"SELECT rowid AS row_id, hash({info.key_expression}) AS key_hash FROM" \
                f" {info.source} WHERE ({info.key_expression}) IS NOT NULL"
        parts, scope = [every], "TRUE"  # the scope: on the map's rows (m)
        # Rows from `start` on are diffed anyway (and with `start` 0, every row).
        touched = np.zeros(0, dtype=np.int64) if touched is None else touched[touched < start]
        if start:
            parts, scope = [f"{every} AND rowid >= {int(start)}"], f"m.row_id >= {int(start)}"
        if len(touched):  # a semi-join, which DuckDB pushes into the scan: 4 ms on 1M rows
            # where `OR rowid IN (...)` reads every row (135 ms)
            parts.append(f"{every} AND rowid IN (SELECT r FROM __quarry_touched)")
            scope = f"({scope} OR m.row_id IN (SELECT r FROM __quarry_touched))"
        self.con.register("__quarry_touched", pa.table({"r": touched}))
        try:
            self.con.execute("CREATE OR REPLACE TEMP TABLE __quarry_now AS"
                             f" {' UNION ALL '.join(parts)}")
            vanished = self.con.execute(
                f"SELECT vid, key_hash FROM {self.rows_table} m WHERE index_name = ? AND"
                f" {scope} AND NOT EXISTS (SELECT 1 FROM __quarry_now n WHERE"
                " n.row_id = m.row_id AND n.key_hash = m.key_hash)", [info.name]).fetchnumpy()
            fresh = self.con.sql(
                f"SELECT row_id, key_hash FROM __quarry_now n WHERE NOT EXISTS (SELECT 1 FROM"
                f" {self.rows_table} m WHERE m.index_name = $name AND {scope}"
                " AND n.row_id = m.row_id AND n.key_hash = m.key_hash)",
                params={"name": info.name}).to_arrow_table()
        finally:
            self.con.execute("DROP TABLE IF EXISTS __quarry_now")
            self.con.unregister("__quarry_touched")
        gone = vanished["vid"].astype(np.int64)
        if not len(gone) and not fresh.num_rows:
            return
        if self.database.read_only:
            raise IndexBehindTable("its table was written since it was saved (by another"
                                   " tool, or a write that did not finish)")
        moved, gone, fresh = _moved_rows(gone, vanished["key_hash"].astype(np.uint64), fresh)
        try:  # before the index changes: a row it cannot hold leaves it as it was
            row_ids, hashes, vectors = self._vectors(info, fresh)
        except UnrankableRows as exc:
            exc.index_unchanged = True
            raise
        index.set_rows(moved["vid"], moved["row_id"])
        index.remove(gone)
        if len(index.tombstones) > REBUILD_TOMBSTONE_SHARE * max(index.index.ntotal, 1):
            self._rebuild(info)
            return
        vids = np.arange(info.next_id, info.next_id + len(row_ids), dtype=np.int64)
        index.add(vectors, vids)
        index.set_rows(vids, row_ids)
        info.next_id += len(row_ids)
        info.tombstones = sorted(index.tombstones)
        self._commit(info, index, gone, row_ids, hashes, vids, replace=False, vectors=vectors,
                     moved=moved)

    def _rebuild(self, info: IndexInfo) -> VectorIndex:
        """Build from every row of the table; vectors of rows seen before come from the cache."""
        self.database.index_infos = None  # `info` changes below
        every = self.con.sql(
            f"SELECT rowid AS row_id, hash({info.key_expression}) AS key_hash FROM {info.source}"
            f" WHERE ({info.key_expression}) IS NOT NULL").to_arrow_table()
        row_ids, hashes, vectors = self._vectors(info, every)
        if info.dim == 0:
            info.dim = int(vectors.shape[1]) if len(vectors) else 0
            if info.dim == 0:
                raise ProgrammingError(
                    f"cannot index {info.expression} on {info.table}: no row has a vector")
        if info.options.kind == "auto":
            info.options.kind = default_kind(len(row_ids))
        vids = np.arange(len(row_ids), dtype=np.int64)
        index = VectorIndex.build(info.dim, info.options, vectors, vids)
        index.set_rows(vids, row_ids)
        info.next_id, info.tombstones = len(row_ids), []
        self._commit(info, index, np.array([], dtype=np.int64), row_ids, hashes, vids,
                     replace=True)
        self.database.loaded_indexes[info.name] = index
        self._count_nulls(info)
        self.database.synced_indexes.add(info.name)
        return index

    def _vectors(self, info: IndexInfo, rows: pa.Table
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vectors of the given rows, computed through the engine (and its cache)."""
        if rows.num_rows == 0:
            return (np.array([], dtype=np.int64), np.array([], dtype=np.uint64),
                    np.zeros((0, max(info.dim, 1)), dtype=np.float32))
        self.con.register("__quarry_index_rows", rows)
        try:
            table = self.run_sql(
                f"SELECT t.rowid AS row_id, hash({_qualified(info.key_expression, 't')})"
                f" AS key_hash, {_qualified(info.expression, 't')} AS v FROM {info.source} t"
                " WHERE t.rowid IN (SELECT row_id FROM __quarry_index_rows)")
        finally:
            self.con.unregister("__quarry_index_rows")
        table = table.filter(pc.is_valid(table.column("v")))
        column = table.column("v").combine_chunks()
        if not (pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type)
                or pa.types.is_large_list(column.type)):
            raise ProgrammingError(
                f"cannot index {info.expression}: it is {column.type}, not a vector")
        numbers = column.type.value_type
        if not (pa.types.is_integer(numbers) or pa.types.is_floating(numbers)
                or pa.types.is_decimal(numbers)):
            raise ProgrammingError(f"cannot index {info.expression}: it is {column.type},"
                                   " not a vector of numbers")
        values = column.flatten().to_numpy(zero_copy_only=False)
        dim = len(values) // max(len(column), 1)
        if not pa.types.is_fixed_size_list(column.type) and len(column):
            lengths = pc.list_value_length(column)
            shortest, longest = pc.min_max(lengths).values()
            if shortest != longest:
                raise UnrankableRows(
                    f"cannot index {info.expression}: its vectors have {shortest.as_py()} to"
                    f" {longest.as_py()} numbers; an index needs one length (a fixed-size"
                    " array such as FLOAT[384] guarantees it)")
        if len(column) and dim == 0:
            raise UnrankableRows(f"cannot index {info.expression}: a vector is empty")
        if info.dim and dim and dim != info.dim:
            raise UnrankableRows(f"{info.expression} gives {dim}-d vectors; index {info.name}"
                                   f" has {info.dim} (DROP INDEX {info.name}, then create it"
                                   " again)")
        why = unrankable(values, info.options.metric, dim)
        if why:
            raise UnrankableRows(f"cannot index {info.expression} with metric"
                                 f" {info.options.metric}: {why}")
        flat = values.astype(np.float32)
        return (table.column("row_id").to_numpy().astype(np.int64),
                table.column("key_hash").to_numpy().astype(np.uint64),
                flat.reshape(len(column), dim) if len(column) else flat.reshape(0, 1))

    def _commit(self, info: IndexInfo, index: VectorIndex, gone: np.ndarray, row_ids: np.ndarray,
                hashes: np.ndarray, vids: np.ndarray, replace: bool,
                vectors: np.ndarray | None = None, moved: dict[str, np.ndarray] | None = None
                ) -> None:
        """File first (atomically), then the DuckDB transaction that records its checksum.

        A change is saved as a small delta file beside the snapshot (many of them are folded
        into one, MAX_DELTAS); the snapshot itself is rewritten on a rebuild, once the deltas
        hold a share of its rows (MAX_DELTA_SHARE), or where a fold would cost near as much."""
        self.database.index_infos = None  # `info` was changed: reread once this is committed
        folder = self._folder(info.name)
        obsolete: list[str] = []
        if folder is not None:
            delta_rows = sum(d[2] for d in info.deltas) + len(vids) + len(gone)
            share = delta_rows / max(index.index.ntotal, 1)
            fold = len(info.deltas) >= MAX_DELTAS
            if (replace or vectors is None or share > MAX_DELTA_SHARE[info.options.kind]
                    or (fold and share > FOLD_MAX_SHARE)):
                info.checksum = index.save(folder / "index.faiss")
                obsolete = [d[0] for d in info.deltas]
                info.deltas = []
            elif fold:  # many small changes: folded into one file
                parts = [(folder / d[0]).read_bytes() for d in info.deltas]
                data, rows = VectorIndex.merged_deltas(
                    parts + [VectorIndex.delta_bytes(vids, vectors, gone)])
                file_name = f"delta-{info.next_id}-merged-{uuid.uuid4().hex[:8]}.npz"
                written = atomic_write_bytes(folder / file_name, data)
                obsolete = [d[0] for d in info.deltas]
                info.deltas = [[file_name, written, rows]]
            else:
                data = VectorIndex.delta_bytes(vids, vectors, gone)
                file_name = f"delta-{info.next_id}-{len(info.deltas)}.npz"
                written = atomic_write_bytes(folder / file_name, data)
                info.deltas.append([file_name, written, len(vids) + len(gone)])
        crash_point("index_file_written")
        if moved is not None and len(moved["vid"]):  # same vectors, new row ids: the map only
            gone = np.concatenate([gone, moved["vid"]])
            vids = np.concatenate([vids, moved["vid"]])
            row_ids = np.concatenate([row_ids, moved["row_id"]])
            hashes = np.concatenate([hashes, moved["key_hash"]])
        added = pa.table({"index_name": pa.array([info.name] * len(vids), type=pa.string()),
                          "vid": pa.array(vids, type=pa.int64()),
                          "row_id": pa.array(row_ids, type=pa.int64()),
                          "key_hash": pa.array(hashes, type=pa.uint64())})
        self.con.register("__quarry_added", added)
        self.con.execute("BEGIN TRANSACTION")
        try:
            if replace:
                self.con.execute(f"DELETE FROM {self.rows_table} WHERE index_name = ?", [info.name])
            elif len(gone):
                self.con.register("__quarry_gone", pa.table({"vid": pa.array(gone)}))
                self.con.execute(f"DELETE FROM {self.rows_table} WHERE index_name = ? AND vid IN"
                                 " (SELECT vid FROM __quarry_gone)", [info.name])
            self.con.execute(f"INSERT INTO {self.rows_table} SELECT * FROM __quarry_added")
            self.con.execute(f"DELETE FROM {self.indexes_table} WHERE name = ?", [info.name])
            self.con.execute(
                f"INSERT INTO {self.indexes_table} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [info.name, info.table, info.expression, info.key_expression,
                 json.dumps(asdict(info.options)), info.dim, info.checksum, info.next_id,
                 json.dumps(info.tombstones), json.dumps(info.deltas)])
            crash_point("index_catalog_written")
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        finally:
            self.con.unregister("__quarry_added")
            if not replace and len(gone):
                self.con.unregister("__quarry_gone")
        self.database.index_infos = None
        crash_point("index_committed")
        for file_name in obsolete:  # folded into the snapshot that is now committed
            if folder is not None:
                (folder / file_name).unlink(missing_ok=True)

    def _folder(self, name: str) -> Path | None:
        if self.database.directory is None:
            return None
        folder = self.database.directory / "indexes" / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def _moved_rows(gone: np.ndarray, gone_hashes: np.ndarray, fresh: pa.Table
                ) -> tuple[dict[str, np.ndarray], np.ndarray, pa.Table]:
    """Pair vanished index entries with new rows of the same input hash: DuckDB moves row ids
    when a checkpoint compacts deleted rows, and a moved row keeps its vector — it needs a new
    row id in the map, not a new vector (nor, for HNSW, a tombstone).

    Returns (moved: vid, row_id, key_hash), the entries really gone, the rows really new."""
    waiting: dict[int, list[int]] = {}
    for vid, key in zip(gone.tolist(), gone_hashes.tolist()):
        waiting.setdefault(key, []).append(vid)
    fresh_rows = fresh.column("row_id").to_numpy().astype(np.int64)
    fresh_hashes = fresh.column("key_hash").to_numpy().astype(np.uint64)
    moved_vids, moved_at = [], []
    for at, key in enumerate(fresh_hashes.tolist()):
        vids = waiting.get(key)
        if vids:
            moved_vids.append(vids.pop())
            moved_at.append(at)
    taken = np.zeros(len(fresh_rows), dtype=bool)
    taken[moved_at] = True
    moved = {"vid": np.array(moved_vids, dtype=np.int64), "row_id": fresh_rows[taken],
             "key_hash": fresh_hashes[taken]}
    still_gone = np.array([v for vids in waiting.values() for v in vids], dtype=np.int64)
    return moved, still_gone, fresh.filter(pa.array(~taken))


def _info(row: tuple, database: str) -> IndexInfo:
    """An index's description from its catalog row. Its table is kept as CREATE INDEX wrote
    it, qualified where it was not in the database's main schema (see VectorCatalog.create):
    read as if nothing else were in use."""
    name, table, expression, key_expression, options, dim, checksum, next_id, tombstones, \
        deltas = row
    return IndexInfo(name, table, expression, key_expression, IndexOptions(**json.loads(options)),
                     dim, checksum, next_id, json.loads(tombstones), json.loads(deltas),
                     table_key(table, database))


def _kept_name(written: str, location: Location, database: str) -> str:
    """The table's name for the catalog: as written where it reads as the main schema's table
    (the usual case, shown so in SHOW INDEXES), else qualified (`s2.items`)."""
    if table_key(written, database) == location:
        return written
    return exp.table_(location[2], db=location[1], quoted=True).sql(dialect=DIALECT)


def _expression_problem(text: str) -> str:
    """What is wrong with an index expression sqlglot cannot parse, in the user's terms."""
    try:
        several = len(sqlglot.parse_one(f"SELECT {text}", dialect=DIALECT).expressions) > 1
    except sqlglot.errors.ParseError:
        several = False
    return ("an index reads one vector expression" if several
            else "it is not a valid SQL expression")


def _options(given: dict[str, str], rows: int) -> IndexOptions:
    known = {f for f in IndexOptions.__dataclass_fields__}
    unknown = set(given) - known
    if unknown:
        raise ProgrammingError(f"unknown index option(s) {', '.join(sorted(unknown))};"
                               f" known: {', '.join(sorted(known))}")
    values: dict[str, object] = {}
    for key, value in given.items():
        default = getattr(IndexOptions(), key)
        try:
            values[key] = type(default)(value)
        except ValueError:
            kind = "an integer" if isinstance(default, int) else f"a {type(default).__name__}"
            raise ProgrammingError(f"index option {key} must be {kind}, got {value!r}") from None
    values.setdefault("kind", "auto")
    options = IndexOptions(**values)  # type: ignore[arg-type]
    try:  # "auto" becomes a kind once the rows are counted: the other options now
        replace(options, kind="flat" if options.kind == "auto" else options.kind).validate()
    except ValueError as exc:
        raise ProgrammingError(str(exc)) from None
    if options.kind == "ivf" and options.nlist > rows:
        raise ProgrammingError(f"nlist {options.nlist} needs at least {options.nlist} rows to"
                               f" train its lists; the table has {rows}")
    return options


def _refuse_other_qualifiers(expression: exp.Expression, table: str) -> None:
    """A qualifier other than the table's name: `st.v` is a struct's field, which the index
    (whose SQL qualifies every column with its table) would read as the column v."""
    foreign = foreign_columns(expression, exp.to_table(table, dialect=DIALECT).name)
    if foreign:
        column = foreign[0]
        raise ProgrammingError(
            f"cannot index {to_sql(expression)}: {to_sql(column)} names a struct's field"
            f" or another table (for a field write {column.table}['{column.name}'])")


def _key_of(expression: exp.Expression) -> exp.Expression:
    """What decides the vector: a model call's input (embed(body) -> body), else the value
    (of array_value(x, y, z): all of it, not x)."""
    node = without_qualifiers(expression)
    if isinstance(node, exp.Anonymous) and str(node.this).lower() == "embed" and node.expressions:
        inner = node.expressions[0]
        if isinstance(inner, exp.Anonymous) and str(inner.this).lower() in ("image", "audio"):
            inner = inner.expressions[0]
        return inner
    return node


def _qualified(expression: str, alias: str) -> str:
    node = sqlglot.parse_one(expression, dialect=DIALECT)
    for column in node.find_all(exp.Column):
        column.set("table", exp.to_identifier(alias))
    return to_sql(node)
