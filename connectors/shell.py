"""The SQL shell: `quarrydb [DB]` to type statements, `quarrydb [DB] -c "SQL"` for one."""

from __future__ import annotations

import argparse
import os
import sys

import quarrydb
from quarrydb.connectors.table_format import format_table

HELP = """Type SQL ending with ';'. Commands:
  .models   list the models (SHOW MODELS)
  .tables   list the tables
  .help     this text
  .quit     leave"""

DOT_COMMANDS = {".models": "SHOW MODELS", ".tables": "SHOW TABLES"}


def run(cursor: quarrydb.Cursor, sql: str) -> int:
    """Run one text of SQL and print its result; return 0, or 1 after an error."""
    try:
        cursor.execute(sql)
    except quarrydb.Error as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    for warning in cursor.warnings:
        print(f"Warning: {warning}", file=sys.stderr)
    if cursor.description is not None:
        print(format_table(cursor.fetch_arrow_table()))
    elif cursor.rowcount >= 0:
        print(f"{cursor.rowcount} row(s)")
    return 0


def interactive(cursor: quarrydb.Cursor) -> int:
    try:
        import readline  # noqa: F401 - line editing and history where available
    except ImportError:
        pass
    print(f"quarrydb {quarrydb.__version__}: .help for help")
    buffer: list[str] = []
    while True:
        try:
            line = input("quarrydb> " if not buffer else "   ...> ")
        except EOFError:
            print()
            return 0
        except KeyboardInterrupt:
            print()
            buffer.clear()
            continue
        stripped = line.strip()
        if not buffer and stripped.startswith("."):
            if stripped in (".quit", ".exit"):
                return 0
            if stripped == ".help":
                print(HELP)
            elif stripped in DOT_COMMANDS:
                run(cursor, DOT_COMMANDS[stripped])
            else:
                print(f"unknown command {stripped}; .help lists them", file=sys.stderr)
            continue
        buffer.append(line)
        if stripped.endswith(";"):
            run(cursor, "\n".join(buffer))
            buffer.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quarrydb", description=__doc__)
    parser.add_argument("database", nargs="?", default=":memory:",
                        help="a database directory (created if missing); default: in memory")
    parser.add_argument("-c", "--command", help="run this SQL, print the result, and exit")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        connection = quarrydb.connect(args.database)
    except quarrydb.Error as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    with connection:
        cursor = connection.cursor()
        if args.command is not None:
            return run(cursor, args.command)
        return interactive(cursor)


if __name__ == "__main__":
    sys.exit(main())
