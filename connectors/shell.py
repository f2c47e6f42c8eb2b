"""The SQL shell: `quarrydb [DB]` to type statements, `quarrydb [DB] -c "SQL"` for one."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Iterable, Iterator

import duckdb
import pyarrow as pa

import quarrydb
from quarrydb.connectors.table_format import format_table
from quarrydb.engine import statements

HELP = """Type SQL ending with ';'. Commands:
  .models   list the models (SHOW MODELS)
  .tables   list the tables
  .help     this text
  .quit     leave"""

DOT_COMMANDS = {".models": "SHOW MODELS", ".tables": "SHOW TABLES"}
QUIT = (".quit", ".exit")
# The exit status after Ctrl-C stopped a command or piped input: 128 + SIGINT, as shells say.
INTERRUPTED_STATUS = 130
BROKEN_PIPE_STATUS = 141  # 128 + SIGPIPE: the reader of the output went away


class Interrupted(Exception):
    """Ctrl-C stopped the statement that was running."""


def run(cursor: quarrydb.Cursor, sql: str, stop_at_error: bool = False) -> int:
    """Run each statement of a text of SQL and print each result, in order; return 0, or 1
    when a statement failed. Text DuckDB cannot parse runs whole, so its error is precise.
    Raises Interrupted when Ctrl-C stopped a statement: the statements after it do not run."""
    failed = 0
    if not has_statement(sql):
        return failed
    for statement in statements.split(sql):
        failed = run_one(cursor, statement.text) or failed
        if failed and stop_at_error:
            break
    return failed


def run_one(cursor: quarrydb.Cursor, sql: str) -> int:
    """Run one statement and print its result; errors of any kind are printed, never raised,
    so that one failing statement cannot end the shell with a traceback. Ctrl-C, wherever it
    stops the statement (in DuckDB, in a model, in printing), raises Interrupted."""
    try:
        cursor.execute(sql)
        for warning in cursor.warnings:
            print(f"Warning: {warning}", file=sys.stderr)
        if cursor.description is not None:
            print(format_result(cursor))
        elif cursor.rowcount >= 0:
            print(f"{cursor.rowcount} row(s)")
    except KeyboardInterrupt:
        raise Interrupted from None
    except BrokenPipeError:  # the reader went away (`| head`): the shell stops (see main)
        raise
    except quarrydb.Error as exc:
        if _is_interrupt(exc):
            raise Interrupted from None
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # quarrydb's own bug: said in one line, the shell goes on
        if _is_interrupt(exc):
            raise Interrupted from None
        print(f"Error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def _is_interrupt(exc: Exception) -> bool:
    """Is this how DuckDB said that Ctrl-C stopped its query? Its Python client checks for
    the signal as it runs and raises RuntimeError('Query interrupted'), or its
    InterruptException (which quarrydb would pass on as its own error, with DuckDB's text)."""
    return (isinstance(exc, duckdb.InterruptException)
            or (isinstance(exc, RuntimeError) and str(exc) == "Query interrupted")
            or str(exc).startswith("INTERRUPT Error"))


def format_result(cursor: quarrydb.Cursor) -> str:
    """The cursor's result as DuckDB's CLI draws it, in as wide a box as the terminal has."""
    table, con = _duckdb_result(cursor)
    types = [column[1] for column in cursor.description or ()]
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    return format_table(table, types=types, con=con, max_width=width)


def _duckdb_result(cursor: quarrydb.Cursor) -> tuple[pa.Table, duckdb.DuckDBPyConnection | None]:
    """The result as the DuckDB connection the cursor ran it on gave it, and that connection
    (whose TimeZone and other settings its values are written under). Where the default Arrow
    loses values (a BIT, a TIMETZ's offset, a UHUGEINT above 2**127) the lossless Arrow the
    cursor keeps is the one to draw. The DB-API has no public way to it yet: read where the
    cursor keeps it, with its default Arrow where it has none."""
    table = cursor.fetch_arrow_table()
    exact = getattr(getattr(cursor, "_result", None), "exact", None)
    if isinstance(exact, pa.Table) and exact.num_rows == table.num_rows:
        table = exact
    return table, _duckdb_connection(cursor)


def _duckdb_connection(cursor: quarrydb.Cursor) -> duckdb.DuckDBPyConnection | None:
    """The DuckDB connection the cursor runs its statements on (None where it has none)."""
    con = getattr(getattr(cursor, "_session", None), "con", None)
    return con if isinstance(con, duckdb.DuckDBPyConnection) else None


@contextlib.contextmanager
def ctrl_c_stops_duckdb(cursor: quarrydb.Cursor) -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt in Python code (a model stage), but DuckDB fetching a
    result as Arrow, as the engine does, never looks for it: the query would run on. While
    this is open, Ctrl-C also interrupts the cursor's DuckDB connection (as DuckDB's CLI does),
    from a thread that Python's signal handler wakes (set_wakeup_fd), so that the query stops
    however long it would run. Does nothing where Python does not handle SIGINT."""
    con = _duckdb_connection(cursor)
    if (con is None or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
            or threading.current_thread() is not threading.main_thread()):
        yield
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    previous = signal.set_wakeup_fd(writer.fileno())

    def watch() -> None:
        while numbers := reader.recv(64):  # each signal's number; b"" once the writer closes
            if signal.SIGINT in numbers:
                con.interrupt()  # harmless when no query runs

    watcher = threading.Thread(target=watch, name="quarrydb-ctrl-c", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        writer.close()
        # Until the watcher has read every signal (it stops at the closed writer's end): one
        # it acted on later, on a loaded machine, interrupted the next statement instead.
        watcher.join()
        reader.close()


def is_complete(text: str) -> bool:
    """Does the text end with `;` outside strings and comments (a comment may follow it)?
    DuckDB's tokenizer says where its strings and comments are. A `/* ...` comment still open
    at the end (the tokenizer takes it to the end of the text) leaves the text incomplete:
    what follows on later lines is comment, not statements to run."""
    if in_open_comment(text):
        return False
    data = text.encode()
    tokens = [(start, kind) for start, kind in duckdb.tokenize(text)
              if kind != duckdb.token_type.comment]
    if not tokens:
        return False
    start, kind = tokens[-1]  # a byte offset in the UTF-8 text
    return kind == duckdb.token_type.operator and data[start:start + 1] == b";"


def in_open_comment(text: str) -> bool:
    """Does the text end inside a `/* ...` comment not yet closed?"""
    tokens = duckdb.tokenize(text)
    if not tokens or tokens[-1][1] != duckdb.token_type.comment:
        return False
    data = text.encode()
    last = tokens[-1][0]
    return data[last:last + 2] == b"/*" and b"*/" not in data[last + 2:]


def has_statement(text: str) -> bool:
    """Is there anything but whitespace and comments?"""
    return any(kind != duckdb.token_type.comment for _, kind in duckdb.tokenize(text))


class Script:
    """Lines of statements (each ended by `;`) and `.` commands, run as each one ends: what
    the terminal, a pipe or -c gives the shell. A statement runs once a line ends it; a `.`
    command is a line of its own (a `;` after it is allowed), outside any statement."""

    def __init__(self, cursor: quarrydb.Cursor, stop_at_error: bool = False) -> None:
        self.cursor = cursor
        self.stop_at_error = stop_at_error
        self.buffer: list[str] = []
        self.failed = 0
        self.quit = False  # .quit or .exit was read

    @property
    def done(self) -> bool:
        return self.quit or bool(self.failed and self.stop_at_error)

    def feed(self, line: str) -> None:
        """Take one line; run what it ends. Raises Interrupted (see run)."""
        stripped = line.strip()
        typed = "\n".join(self.buffer)
        if stripped.startswith(".") and not has_statement(typed) and not in_open_comment(typed):
            self.buffer.clear()  # only comments before it
            command = stripped.rstrip(";").rstrip()
            if command in QUIT:
                self.quit = True
                return
            self.failed = dot_command(self.cursor, command) or self.failed
            return
        self.buffer.append(line)
        if ";" not in line:  # only a line with a ';' can end a statement: the buffer is not
            return  # tokenized again for every line of a long one
        text = "\n".join(self.buffer)
        if is_complete(text):
            self.buffer.clear()
            self.failed = run(self.cursor, text, self.stop_at_error) or self.failed

    def end(self) -> None:
        """The input ended: a last statement without `;` runs all the same."""
        text = "\n".join(self.buffer)
        self.buffer.clear()
        if has_statement(text):
            self.failed = run(self.cursor, text, self.stop_at_error) or self.failed

    def clear(self) -> None:
        """Forget the statement being typed."""
        self.buffer.clear()


def run_lines(cursor: quarrydb.Cursor, lines: Iterable[str], stop_at_error: bool = False
              ) -> int:
    """Run lines of statements and `.` commands (see Script); return 0, or 1 when one
    failed. Raises Interrupted when Ctrl-C stopped a statement."""
    script = Script(cursor, stop_at_error)
    for line in lines:
        script.feed(line)
        if script.done:
            return script.failed
    script.end()
    return script.failed


def interactive(cursor: quarrydb.Cursor) -> int:
    """Read statements (ended by `;`) from the terminal or a pipe and run them as they end;
    a last statement without `;` runs at the end of input. With input piped, no prompts are
    shown and the exit status is 1 when any statement failed, as a script needs. Ctrl-C
    stops the running statement; at the terminal the prompt comes back, while piped input
    stops there (the exit status says so)."""
    at_terminal = sys.stdin.isatty()
    if not at_terminal:
        return run_lines(cursor, _piped_lines())
    _enable_line_editing()
    print(f"quarrydb {quarrydb.__version__}: .help for help")
    script = Script(cursor)
    while not script.quit:
        prompt = "quarrydb> " if not script.buffer else "   ...> "
        try:
            line = input(prompt)
        except EOFError:
            print()
            break
        except KeyboardInterrupt:  # Ctrl-C at the prompt: forget what was typed
            print()
            script.clear()
            continue
        try:
            script.feed(line)
        except (Interrupted, KeyboardInterrupt):
            print("Error: Interrupted", file=sys.stderr)
            script.clear()
    if not script.quit:
        try:
            script.end()
        except (Interrupted, KeyboardInterrupt):
            print("Error: Interrupted", file=sys.stderr)
    return 0


def _piped_lines() -> Iterable[str]:
    while True:
        try:
            yield input()
        except EOFError:
            return


def dot_command(cursor: quarrydb.Cursor, command: str) -> int:
    """Run a `.` command; return 1 for an unknown one or an error."""
    if command == ".help":
        print(HELP)
        return 0
    if command in DOT_COMMANDS:
        return run_one(cursor, DOT_COMMANDS[command])
    print(f"Error: unknown command {command} (.help lists them)", file=sys.stderr)
    return 1


def _enable_line_editing() -> None:
    try:
        import readline  # noqa: F401 - line editing and history where available
    except ImportError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quarrydb", description=__doc__)
    parser.add_argument("database", nargs="?", default=":memory:",
                        help="a database directory (created if missing); default: in memory")
    parser.add_argument("-c", "--command",
                        help="run this SQL (one or more statements, or a . command such as"
                             " .tables), print each result, and exit; stops at the first error")
    parser.add_argument("--read-only", action="store_true",
                        help="open an existing database without writing to it (as DuckDB's"
                             " -readonly): other processes may read it at the same time")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        try:
            connection = quarrydb.connect(args.database, read_only=args.read_only)
            cursor = connection.cursor()
        except Exception as exc:  # a quarrydb error, or its bug: one line, not a traceback
            print(f"Error: {exc}", file=sys.stderr)
            return 1
        with connection, ctrl_c_stops_duckdb(cursor):
            if args.command is not None:
                return run_lines(cursor, args.command.split("\n"), stop_at_error=True)
            return interactive(cursor)
    except (Interrupted, KeyboardInterrupt):  # -c or piped input: stop there, and say so
        print("Error: Interrupted", file=sys.stderr)
        return INTERRUPTED_STATUS
    except BrokenPipeError:  # nobody reads what is left: stop quietly, as DuckDB's CLI does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's flush at exit would fail again
        return BROKEN_PIPE_STATUS


if __name__ == "__main__":
    sys.exit(main())
