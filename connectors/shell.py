"""The SQL shell: `quarrydb [DB]` to type statements, `quarrydb [DB] -c "SQL"` for one."""

from __future__ import annotations

import argparse
import os
import sys

import duckdb

import quarrydb
from quarrydb.connectors.table_format import format_table
from quarrydb.engine import statements

HELP = """Type SQL ending with ';'. Commands:
  .models   list the models (SHOW MODELS)
  .tables   list the tables
  .help     this text
  .quit     leave"""

DOT_COMMANDS = {".models": "SHOW MODELS", ".tables": "SHOW TABLES"}


def run(cursor: quarrydb.Cursor, sql: str, stop_at_error: bool = False) -> int:
    """Run each statement of a text of SQL and print each result, in order; return 0, or 1
    when a statement failed. Text DuckDB cannot parse runs whole, so its error is precise."""
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
    so that one failing statement cannot end the shell with a traceback."""
    try:
        cursor.execute(sql)
        for warning in cursor.warnings:
            print(f"Warning: {warning}", file=sys.stderr)
        if cursor.description is not None:
            print(format_table(cursor.fetch_arrow_table()))
        elif cursor.rowcount >= 0:
            print(f"{cursor.rowcount} row(s)")
    except quarrydb.Error as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # quarrydb's own bug: said in one line, the shell goes on
        print(f"Error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def is_complete(text: str) -> bool:
    """Does the text end with `;` outside strings and comments (a comment may follow it)?
    DuckDB's tokenizer says where its strings and comments are."""
    tokens = [(start, kind) for start, kind in duckdb.tokenize(text)
              if kind != duckdb.token_type.comment]
    if not tokens:
        return False
    start, kind = tokens[-1]  # a byte offset in the UTF-8 text
    return kind == duckdb.token_type.operator and text.encode()[start:start + 1] == b";"


def has_statement(text: str) -> bool:
    """Is there anything but whitespace and comments?"""
    return any(kind != duckdb.token_type.comment for _, kind in duckdb.tokenize(text))


def interactive(cursor: quarrydb.Cursor) -> int:
    """Read statements (ended by `;`) from the terminal or a pipe and run them as they end;
    a last statement without `;` runs at the end of input. With input piped, no prompts are
    shown and the exit status is 1 when any statement failed, as a script needs."""
    at_terminal = sys.stdin.isatty()
    if at_terminal:
        _enable_line_editing()
        print(f"quarrydb {quarrydb.__version__}: .help for help")
    buffer: list[str] = []
    failed = 0
    while True:
        prompt = ("quarrydb> " if not buffer else "   ...> ") if at_terminal else ""
        try:
            line = input(prompt)
        except EOFError:
            if at_terminal:
                print()
            text = "\n".join(buffer)
            if has_statement(text):
                failed = run(cursor, text) or failed
            return 0 if at_terminal else failed
        except KeyboardInterrupt:
            print()
            buffer.clear()
            continue
        stripped = line.strip()
        if stripped.startswith(".") and not has_statement("\n".join(buffer)):
            buffer.clear()  # only comments before it
            if stripped in (".quit", ".exit"):
                return 0 if at_terminal else failed
            failed = dot_command(cursor, stripped) or failed
            continue
        buffer.append(line)
        if ";" not in line:  # only a line with a ';' can end a statement: the buffer is not
            continue  # tokenized again for every line of a long one
        text = "\n".join(buffer)
        if is_complete(text):
            failed = run(cursor, text) or failed
            buffer.clear()


def dot_command(cursor: quarrydb.Cursor, command: str) -> int:
    """Run a `.` command; return 1 for an unknown one or an error."""
    if command == ".help":
        print(HELP)
        return 0
    if command in DOT_COMMANDS:
        return run_one(cursor, DOT_COMMANDS[command])
    print(f"unknown command {command}; .help lists them", file=sys.stderr)
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
                        help="run this SQL (one or more statements), print each result, and exit;"
                             " stops at the first error")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        connection = quarrydb.connect(args.database)
        cursor = connection.cursor()
    except Exception as exc:  # a quarrydb error, or its bug: one line, not a traceback
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    with connection:
        if args.command is not None:
            return run(cursor, args.command, stop_at_error=True)
        return interactive(cursor)


if __name__ == "__main__":
    sys.exit(main())
