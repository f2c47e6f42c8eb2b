"""The database: one DuckDB file plus the engine's own tables, in a directory of its own.

`:memory:` keeps nothing. Any other path is a directory holding `quarry.duckdb` (user tables and
the engine's tables: the result cache, ...), a FORMAT file that says which release can read it,
and `tmp/` for atomic writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from quarrydb.engine.atomic import atomic_write_bytes
from quarrydb.engine.errors import OperationalError, ProgrammingError
from quarrydb.engine.pending_diffs import PendingDiff
from quarrydb.udfs.media_input import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, TEXT_EXTENSIONS

FORMAT_VERSION = 1
FORMAT_FILE = "FORMAT"
DUCKDB_FILE = "quarry.duckdb"
MEMORY = ":memory:"
SKELETON_DIR = "tmp"
# DuckDB's message when another process holds the file (one process may open it to write).
_LOCK_CONFLICT = "Could not set lock on file"
HEADER_SIZE = 4096  # DuckDB's file headers (see Database.file_mark)
INTERNAL_SCHEMA = "_quarry"

_INTERNAL_TABLES = f"""
CREATE SCHEMA IF NOT EXISTS {INTERNAL_SCHEMA};
CREATE TABLE IF NOT EXISTS {INTERNAL_SCHEMA}.result_cache (
    call_key VARCHAR NOT NULL,      -- function, model and revision, options
    input_hash VARCHAR NOT NULL,    -- content hash of the input value
    value BLOB NOT NULL,            -- the encoded result
    PRIMARY KEY (call_key, input_hash)
);
"""



def internal_table(database: str, table: str) -> str:
    """An engine table, qualified with the database it lives in: it is found after a USE of
    another (ATTACHed) database, as DuckDB resolves unqualified schemas in the one in use."""
    return f'"{database}".{INTERNAL_SCHEMA}.{table}'


def _kind_by_extension(column: str) -> str:
    """SQL naming a file's kind from its extension, as read_media reports it."""
    ext = f"lower(regexp_extract({column}, '\\.([A-Za-z0-9]+)$', 1))"

    def listed(names: tuple[str, ...]) -> str:
        return ", ".join(f"'{n}'" for n in names)

    return (
        f"CASE WHEN {ext} IN ({listed(IMAGE_EXTENSIONS)}) THEN 'image'"
        f" WHEN {ext} IN ({listed(AUDIO_EXTENSIONS)}) THEN 'audio'"
        f" WHEN {ext} IN ({listed(TEXT_EXTENSIONS)}) THEN 'text' ELSE 'other' END"
    )


# SQL functions that need no model: installed in every connection (not stored in the file).
# - similarity / distance: cosine similarity / L2 distance; the CASE guards DuckDB, which
#   rejects a NULL vector cast to a list;
# - image(x) / audio(x): mark a value as media for a model call; elsewhere they return x;
# - read_media(glob): one row per file; read_blob skips the content when it is not selected
#   (and would name itself, not read_media, for a NULL pattern).
_MACROS = f"""
CREATE OR REPLACE TEMP MACRO similarity(a, b) AS
    CASE WHEN a IS NULL OR b IS NULL THEN NULL
         ELSE nullif(list_cosine_similarity(a::FLOAT[], b::FLOAT[]), 'nan'::FLOAT) END;
CREATE OR REPLACE TEMP MACRO distance(a, b) AS
    CASE WHEN a IS NULL OR b IS NULL THEN NULL
         ELSE list_distance(a::FLOAT[], b::FLOAT[]) END;
CREATE OR REPLACE TEMP MACRO image(x) AS x;
CREATE OR REPLACE TEMP MACRO audio(x) AS x;
CREATE OR REPLACE TEMP MACRO read_media(pattern) AS TABLE
    SELECT filename AS path, {_kind_by_extension('filename')} AS kind, size,
           last_modified AS modified
    FROM read_blob(coalesce(pattern,
                            error('read_media needs a file name or glob pattern, got NULL')));
"""


class KeptPerGeneration:
    """Answers read from DuckDB, kept while the database's catalog generation they were read
    at holds (see Database.names_may_lead_elsewhere): a search repeated asks nothing."""

    def __init__(self, generation: Callable[[], int]) -> None:
        self._generation = generation  # () -> the database's catalog generation now
        self._kept: dict[Any, Any] = {}
        self._read_at = -1

    def get(self, key: Any, read: Callable[[], Any]) -> Any:
        now = self._generation()
        if now != self._read_at:
            self._kept.clear()
            self._read_at = now
        if key not in self._kept:
            self._kept[key] = read()
        return self._kept[key]


class Database:
    """An open database: embedded, in memory or in a directory."""

    def __init__(self, path: str | Path = MEMORY, read_only: bool = False,
                 config: dict[str, Any] | None = None) -> None:
        self.path = database_path(path)
        self.directory: Path | None = None
        self._file_handle: int | None = None  # see file_mark
        self._checkpoints_in_memory = 0
        # Read-only: nothing is written (no result cached, no index saved), as DuckDB's own
        # read_only; several processes may then read one database at once.
        self.read_only = read_only
        self.config = checked_config(config)  # DuckDB's settings it was opened with
        if in_memory(self.path):
            if read_only:
                raise ProgrammingError("an in-memory database cannot be read-only: it starts"
                                       " empty (open a database directory read-only)")
            self.duck = _open_duckdb(self.path, None, False, self.config)
        else:
            self.directory = Path(self.path).expanduser()
            new = not self.directory.exists()
            if read_only:
                _check_existing(self.directory)
            else:
                _prepare_directory(self.directory)
            try:
                self.duck = _open_duckdb(self.path, self.directory / DUCKDB_FILE, read_only,
                                         self.config)
            except ProgrammingError:  # a config DuckDB refuses: no database made
                if new:
                    _remove_skeleton(self.directory)
                raise
            self._file_handle = os.open(self.directory / DUCKDB_FILE, os.O_RDONLY)
        self.name = self.duck.execute("SELECT current_database()").fetchall()[0][0]  # "quarry"
        # Vector indexes loaded in this process, and those diffed against their table since
        # the database was opened or last written (see vector_catalog).
        self.loaded_indexes: dict[str, Any] = {}
        self.synced_indexes: set[str] = set()
        # ... and for some that are not, the rows a diff is needed for (see PendingDiff); any
        # other is diffed whole.
        self.pending_diffs: dict[str, PendingDiff] = {}
        # Indexes out of use (see IndexOutOfUse: a row they cannot rank, or read-only and
        # behind their table), and why: searches run exact, without diffing again, until a
        # write may have changed that.
        self.out_of_use: dict[str, Exception] = {}
        self.index_null_rows: dict[str, int] = {}
        self.index_infos: list[Any] | None = None  # the catalog's rows, read once
        self.orphans_dropped = False  # indexes whose table another tool dropped: at first use
        # Where each index's table is and DuckDB's object id of it, as last seen (see
        # VectorCatalog.drop_replaced)
        self.index_table_oids: dict[str, tuple[tuple[str, str, str], int | None]] = {}
        self.checkpoint_mark = self.file_mark()  # as of the last look (see vector_catalog)
        # Counts the statements that may change where a table's name leads (DDL, USE, SET
        # schema, ...): answers kept from before are asked again (see table_locations).
        self.catalog_generation = 0
        self.users = 1  # connections sharing it (see open_database)
        self.lock = threading.RLock()  # see Session._one_at_a_time

    def names_may_lead_elsewhere(self) -> None:
        """A statement (DDL, USE, SET schema, register ...) may have changed where a table's
        name leads: each connection asks DuckDB again (see table_locations)."""
        self.catalog_generation += 1

    def forget_syncs(self, name: str | None = None) -> None:
        """Mark one index, or all, for a diff against its whole table (rows may have changed)."""
        if name is None:
            self.synced_indexes.clear()
            self.pending_diffs.clear()
            self.out_of_use.clear()
        else:
            self.synced_indexes.discard(name)
            self.pending_diffs.pop(name, None)
            self.out_of_use.pop(name, None)

    def checkpoint_ran(self) -> None:
        """A CHECKPOINT statement ran. In memory there is no file to tell it (see file_mark),
        and DuckDB's checkpoint compacts deleted rows there too."""
        self._checkpoints_in_memory += 1

    def file_mark(self) -> object:
        """Changes whenever DuckDB checkpoints the file (in memory: at each CHECKPOINT
        statement, which is when an in-memory database checkpoints). DuckDB has no SQL for
        it, but its file counts checkpoints: each of the two database headers (at 4096 and
        8192, after the main header's "DUCK" at byte 8) starts with a checksum and then an
        iteration number. A file laid out otherwise falls back to its (mtime, size), which
        also changes when a large insert writes row groups early: a needless diff, no harm.

        It reads through a handle held open while the database is: closing any handle of a
        file drops the process's POSIX locks on it, DuckDB's included, which let another
        process open the database while this one had it."""
        if self._file_handle is None:
            return self._checkpoints_in_memory
        head = os.pread(self._file_handle, 3 * HEADER_SIZE, 0)
        if len(head) == 3 * HEADER_SIZE and head[8:12] == b"DUCK":
            return max(struct.unpack_from("<Q", head, offset + 8)[0]
                       for offset in (HEADER_SIZE, 2 * HEADER_SIZE))
        stat = os.fstat(self._file_handle)
        return stat.st_mtime_ns, stat.st_size

    def new_connection(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection of its own (per cursor), with quarrydb's SQL macros installed.
        DuckDB's scan of Python variables is off: it would look in the engine's frames, not
        the user's (the DB-API registers the user's, see connectors.python_tables)."""
        con = self.duck.cursor()
        con.execute(_MACROS)
        con.execute("SET python_enable_replacements = false")
        return con

    def close(self) -> None:
        """Closed when the last connection sharing it (see open_database) closes."""
        with _SHARED_LOCK:
            self.users -= 1
            if self.users > 0:
                return
            key = _shared_key(self.path)
            if key is not None and _SHARED.get(key) is self:
                del _SHARED[key]
        self.duck.close()
        if self._file_handle is not None:  # after DuckDB's: closing it drops DuckDB's lock
            os.close(self._file_handle)
            self._file_handle = None


# Every connection of a process to one directory shares one Database: its loaded indexes and
# what is known of them (a write through one connection must be seen by another's next search),
# and its DuckDB instance (DuckDB shares that too, one per file and process). So do those to
# one named in-memory database, `:memory:<name>`, as DuckDB's do.
_SHARED: dict[Path | str, Database] = {}
_SHARED_LOCK = threading.Lock()


def open_database(path: str | Path = MEMORY, read_only: bool = False,
                  config: dict[str, Any] | None = None) -> Database:
    """The process's Database at `path`, opened on first use; `:memory:` is new each time.
    DuckDB opens a file one way in a process: read-only, or to write, and with one config."""
    path = database_path(path)
    with _SHARED_LOCK:
        key = _shared_key(path)
        database = None if key is None else _SHARED.get(key)
        if database is None:
            database = Database(path, read_only, config)
            if key is not None:
                _SHARED[key] = database
        elif database.read_only != read_only:
            way = "read-only" if database.read_only else "to write"
            raise OperationalError(
                f"database {path!r} is open {way} in this process already: DuckDB opens a"
                " file one way per process (close those connections first)")
        elif database.config != checked_config(config):
            raise OperationalError(
                f"database {path!r} is open in this process already with another config:"
                " DuckDB opens a database with one configuration per process (close those"
                " connections first, or pass the same config)")
        else:
            database.users += 1
        return database


def in_memory(path: str) -> bool:
    """`:memory:`, or a named in-memory database `:memory:<name>`, as DuckDB reads them."""
    return path.startswith(MEMORY)


def _shared_key(path: str) -> Path | str | None:
    """What connections sharing the Database at `path` have in common (None: it is shared
    with none, `:memory:`)."""
    if path == MEMORY:
        return None
    if in_memory(path):
        return path
    return _key(Path(path).expanduser())


def checked_config(config: object) -> dict[str, Any]:
    """DuckDB's settings to open a database with, as duckdb.connect takes them: a dict (None
    is none). DuckDB checks its keys and values when it opens the database."""
    if config is None:
        return {}
    if not isinstance(config, dict) or not all(isinstance(key, str) for key in config):
        raise ProgrammingError("config is a dict of DuckDB settings, such as"
                               f" {{'threads': 4}}, not {type(config).__name__}")
    return dict(config)


def _key(directory: Path) -> Path:
    try:
        return directory.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop, an unreadable parent
        raise OperationalError(f"cannot open database {str(directory)!r}: {exc}") from None


def database_path(path: object) -> str:
    """The path as text, checked as DuckDB checks its own: a str or a path-like object
    (None is refused, as `duckdb.connect(None)` refuses it); "" means in memory, as in DuckDB."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str):
        raise ProgrammingError(
            f"a database path must be a str or a pathlib.Path, not {type(path).__name__}"
            " (connect() with no argument opens one in memory)"
        )
    return path or MEMORY


def in_use_or_unopenable(path: str, exc: Exception) -> OperationalError:
    """DuckDB's error opening or first writing the database, as a clear OperationalError: a
    lock held by another process is said plainly (DuckDB lets one process write a file)."""
    if _LOCK_CONFLICT in str(exc):
        # DuckDB's hint names its own CLI's flag: quarrydb's is read_only=True / --read-only.
        said = str(exc).split(" See also ")[0].replace(
            "the -readonly parameter in the CLI", "read_only=True (the shell's --read-only)")
        return OperationalError(
            f"database {path!r} is in use by another process: while one process writes a"
            " database, no other may open it, and while processes read it (read_only=True),"
            f" none may write it; close it there and retry ({said})"
        )
    return OperationalError(f"cannot open database {path!r}: {exc}")


def _open_duckdb(path: str, file: Path | None, read_only: bool, config: dict[str, Any]
                 ) -> duckdb.DuckDBPyConnection:
    """The DuckDB file (None: the in-memory database `path`) with the engine's tables in it
    (their creation is the first write, where another process's lock on the write-ahead log
    shows; read-only, they are there). A config value DuckDB refuses is the user's mistake."""
    try:
        duck = duckdb.connect(path if file is None else str(file), read_only=read_only,
                              config=config)
    except duckdb.InvalidInputException as exc:
        raise ProgrammingError(f"cannot open database {path!r} with config {config}: {exc}"
                               ) from None
    except duckdb.Error as exc:
        raise in_use_or_unopenable(path, exc) from None

    if read_only:
        return duck
    try:
        duck.execute(_INTERNAL_TABLES)
    except duckdb.Error as exc:
        duck.close()
        raise in_use_or_unopenable(path, exc) from None
    return duck


def _prepare_directory(directory: Path) -> None:
    """Create a new database directory, or check that an existing one is ours and readable.
    OS errors (a parent that is a file, no permission, ...) become OperationalError."""
    try:
        _create_or_check(directory)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        where = f" ({exc.filename})" if exc.filename and exc.filename != str(directory) else ""
        raise OperationalError(
            f"cannot open database {str(directory)!r}: {reason}{where}"
        ) from None


def _check_existing(directory: Path) -> None:
    """A database directory opened read-only must exist, and be ours: nothing is created."""
    if not (directory / FORMAT_FILE).exists() or not (directory / DUCKDB_FILE).exists():
        raise OperationalError(
            f"cannot open database {str(directory)!r} read-only: there is no quarrydb database"
            " there (open it once without read_only to create it)")
    try:
        _check_format(directory, directory / FORMAT_FILE)
    except OSError as exc:
        raise OperationalError(f"cannot open database {str(directory)!r}: {exc}") from None


def _create_or_check(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise OperationalError(
            f"{str(directory)!r} is a file, not a quarrydb database directory"
            " (to query a plain DuckDB file, ATTACH it)"
        )
    format_file = directory / FORMAT_FILE
    if not format_file.exists():
        _create(directory)
    _check_format(directory, format_file)


def _create(directory: Path) -> None:
    """A new database's skeleton. Another process may be creating the same one at this moment:
    a directory holding only the skeleton is taken as ours, and FORMAT is written atomically
    (both write the same), so neither reports the other's half-made directory as foreign."""
    directory.mkdir(parents=True, exist_ok=True)
    foreign = [entry.name for entry in directory.iterdir() if not _is_skeleton(entry.name)]
    if foreign and not (directory / FORMAT_FILE).exists():
        raise OperationalError(
            f"{str(directory)!r} exists but is not a quarrydb database (no {FORMAT_FILE} file)"
        )
    (directory / SKELETON_DIR).mkdir(exist_ok=True)
    if not (directory / FORMAT_FILE).exists():
        payload = {"format": FORMAT_VERSION, "created_by": "quarrydb"}
        atomic_write_bytes(directory / FORMAT_FILE, json.dumps(payload).encode())


def _remove_skeleton(directory: Path) -> None:
    """Remove a database directory this process has just made, holding nothing else yet."""
    with contextlib.suppress(OSError):
        (directory / FORMAT_FILE).unlink()
        (directory / SKELETON_DIR).rmdir()
        directory.rmdir()


def _is_skeleton(name: str) -> bool:
    """Names a database being created has before its FORMAT file: `tmp/`, and FORMAT's own
    temporary file (see atomic_write)."""
    return name in (SKELETON_DIR, FORMAT_FILE) or (
        name.startswith(f".{FORMAT_FILE}.") and name.endswith(".tmp"))


def _check_format(directory: Path, format_file: Path) -> None:
    if not format_file.is_file():
        raise OperationalError(
            f"database {str(directory)!r} is damaged: {str(format_file)!r} is not a file")
    try:
        version = int(json.loads(format_file.read_text())["format"])
    except (ValueError, KeyError, TypeError) as exc:
        raise OperationalError(f"{str(format_file)!r} is damaged: {exc}") from exc
    if version > FORMAT_VERSION:
        raise OperationalError(
            f"database {str(directory)!r} has format {version}, written by a newer quarrydb;"
            f" this release reads format {FORMAT_VERSION} and older: upgrade quarrydb"
        )
