"""The `quarrydb` shell prints every statement's result, in order, runs what it is given to
the end of the input, and says in its exit status whether a statement failed."""

from __future__ import annotations

import io

import pytest

from quarrydb.connectors import shell

# sqlglot, which reads statements that call models, gives up on this with RecursionError: a
# Python error from inside the engine, not one of quarrydb's.
DEEPLY_NESTED = "SELECT embed(" + "(" * 1000 + "'x'" + ")" * 1000 + ")"


def run_shell(monkeypatch, capsys, *args: str, stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    status = shell.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def column_names(out: str) -> list[str]:
    """The heading of each table printed, in order."""
    lines = out.splitlines()
    return [lines[i + 1].strip("| ").strip() for i, line in enumerate(lines[:-1])
            if line.startswith("+") and (i == 0 or not lines[i - 1].startswith("|"))]


def test_command_prints_every_statements_result_in_order(monkeypatch, capsys):
    status, out, _ = run_shell(monkeypatch, capsys, "-c", "SELECT 1 AS a; SELECT 2 AS b")
    assert status == 0
    assert column_names(out) == ["a", "b"]


def test_command_stops_at_the_first_error_with_status_1(monkeypatch, capsys):
    status, out, err = run_shell(monkeypatch, capsys, "-c",
                                 "SELECT 1 AS a; SELECT nope AS b; SELECT 3 AS c")
    assert status == 1
    assert column_names(out) == ["a"]
    assert err.startswith("Error: ") and "nope" in err


def test_piped_statements_all_run_and_print(monkeypatch, capsys):
    script = ("SELECT 3 AS c; SELECT 4 AS d;\n"
              "SELECT 5 AS e; -- a note after the last ';'\n"
              "SELECT 6 AS f;\n"
              "SELECT 'x;\ny' AS g;\n"  # a ';' in a string does not end the statement
              "SELECT 8 AS h\n")  # no ';' at the end of the input: runs all the same
    status, out, err = run_shell(monkeypatch, capsys, stdin=script)
    assert (status, err) == (0, "")
    assert column_names(out) == ["c", "d", "e", "f", "g", "h"]
    assert "quarrydb>" not in out  # no prompts when the input is not a terminal


def test_piped_input_goes_on_after_an_error_and_exits_1(monkeypatch, capsys):
    status, out, err = run_shell(monkeypatch, capsys,
                                 stdin="SELEC 7;\nSELECT 8 AS g;\n-- only a comment\n")
    assert status == 1
    assert column_names(out) == ["g"]
    assert [line for line in err.splitlines() if line.startswith("Error:")] == [
        'Error: Parser Error: syntax error at or near "SELEC"']


def test_an_error_the_planner_meets_does_not_end_the_shell(monkeypatch, capsys):
    status, out, err = run_shell(monkeypatch, capsys,
                                 stdin=f"{DEEPLY_NESTED};\nSELECT 9 AS after;\n")
    assert status == 1
    assert column_names(out) == ["after"]
    assert err.startswith("Error: the statement is nested too deeply") and "Traceback" not in err


def test_dot_commands_after_a_comment_line(monkeypatch, capsys):
    status, out, err = run_shell(monkeypatch, capsys,
                                 stdin="-- list them\n.tables\n.nonsense\n")
    assert status == 1  # the unknown command
    assert "unknown command .nonsense" in err


@pytest.mark.parametrize("make_path", [
    lambda tmp: tmp / "afile" / "sub",  # under a regular file
    lambda tmp: tmp / "afile",  # a regular file
])
def test_a_bad_database_path_is_one_error_line(monkeypatch, capsys, tmp_path, make_path):
    (tmp_path / "afile").write_text("x")
    status, out, err = run_shell(monkeypatch, capsys, str(make_path(tmp_path)), "-c", "SELECT 1")
    assert status == 1 and out == ""
    assert err.startswith("Error: ") and "Traceback" not in err and len(err.splitlines()) == 1


def test_the_command_runs_against_a_database_directory(monkeypatch, capsys, tmp_path):
    database = str(tmp_path / "db")
    status, _, _ = run_shell(monkeypatch, capsys, database, "-c",
                             "CREATE TABLE t AS SELECT 42 AS answer")
    assert status == 0
    status, out, _ = run_shell(monkeypatch, capsys, database, "-c", "SELECT answer FROM t")
    assert status == 0 and "42" in out
