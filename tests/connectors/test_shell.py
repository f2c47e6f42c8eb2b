"""The `quarrydb` shell prints every statement's result, in order, runs what it is given to
the end of the input, and says in its exit status whether a statement failed."""

from __future__ import annotations

import io
import os
import pty
import select
import signal
import subprocess
import sys
import time

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
    """The heading of each table printed (one column each), in order: the line under a box's
    top, as DuckDB's renderer draws it."""
    lines = out.splitlines()
    return [lines[i + 1].strip("│ ") for i, line in enumerate(lines[:-1]) if line.startswith("┌")]


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


def test_dot_commands_may_end_with_a_semicolon(monkeypatch, capsys, tmp_path):
    database = str(tmp_path / "db")
    run_shell(monkeypatch, capsys, database, "-c", "CREATE TABLE notes AS SELECT 1 AS id")
    script = ".tables;\n.nonsense;\nSELECT 1 AS a;\n.quit;\nSELECT 2 AS b;\n"
    status, out, err = run_shell(monkeypatch, capsys, database, stdin=script)
    assert status == 1  # the unknown command; .quit ends the input there
    assert column_names(out) == ["name", "a"] and "notes" in out
    assert err == "Error: unknown command .nonsense (.help lists them)\n"


def test_quit_with_a_semicolon_exits_0(monkeypatch, capsys):
    status, out, err = run_shell(monkeypatch, capsys, stdin="SELECT 1 AS a;\n.quit;\n")
    assert (status, err, column_names(out)) == (0, "", ["a"])


def test_command_runs_dot_commands(monkeypatch, capsys, tmp_path):
    database = str(tmp_path / "db")
    run_shell(monkeypatch, capsys, database, "-c", "CREATE TABLE notes AS SELECT 1 AS id")
    status, out, err = run_shell(monkeypatch, capsys, database, "-c", ".tables")
    assert (status, err) == (0, "")
    assert column_names(out) == ["name"] and "notes" in out
    status, out, err = run_shell(monkeypatch, capsys, database, "-c",
                                 "SELECT 1 AS a;\n.tables;\n.nonsense\nSELECT 2 AS b")
    assert status == 1 and column_names(out) == ["a", "name"]  # stops at the first error


# Ctrl-C, for real: the shell runs in a process of its own, which gets SIGINT.
SHELL = [sys.executable, "-c", "import sys; from quarrydb.connectors.shell import main;"
         " sys.exit(main())"]
FOREVER = "SELECT sum(hash(a)) FROM range(100000000000) t(a);"  # a plain DuckDB query
MANY_EMBEDDINGS = "SELECT count(embed(a::VARCHAR || ' x')) FROM range(200000) t(a);"


def start_shell(*args: str, **streams) -> subprocess.Popen:
    """The shell, with Python's Ctrl-C handler (a test runner may have SIGINT ignored, and a
    process started so would ignore it too)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([*SHELL, *args], env=env, **streams,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


# A fresh shell needs seconds before its prompt (more on a loaded machine); a statement that
# Ctrl-C stops may be in the middle of loading a model. These bound a shell that hangs, a failure.
START_TIMEOUT = 600
TIMEOUT = 300


def read_until(fd: int, marker: str, seen: list[bytes], timeout: float = TIMEOUT) -> str:
    """What the shell wrote to `fd` until `marker`, after what `seen` holds (kept there)."""
    deadline = time.monotonic() + timeout
    while marker.encode() not in b"".join(seen) and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the shell is gone
                break
            if not chunk:
                break
            seen.append(chunk)
    text = b"".join(seen).decode(errors="replace")
    assert marker in text, f"no {marker!r} in {text!r}"
    seen[:] = [text.split(marker, 1)[1].encode()]
    return text.split(marker, 1)[0] + marker


def cpu_seconds(pid: int) -> float:
    """The CPU time a process has used, all its threads (Linux's /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()  # after the name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def wait_until_it_works(shell_process: subprocess.Popen, cpu: float = 0.5) -> None:
    """Wait until the shell has used `cpu` more seconds of CPU: the statement it was given
    runs (waiting at a prompt or for a pipe costs nothing), however slow the machine is."""
    start = cpu_seconds(shell_process.pid)
    deadline = time.monotonic() + TIMEOUT
    while cpu_seconds(shell_process.pid) - start < cpu:
        assert shell_process.poll() is None and time.monotonic() < deadline, "it does not run"
        time.sleep(0.05)


def test_ctrl_c_stops_the_statement_and_the_prompt_comes_back():
    controller, terminal = pty.openpty()
    shell_process = start_shell(stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    seen: list[bytes] = []
    try:
        read_until(controller, "quarrydb> ", seen, START_TIMEOUT)
        for statement in (FOREVER, MANY_EMBEDDINGS):
            os.write(controller, f"{statement}\n".encode())
            read_until(controller, statement, seen)  # echoed as the shell reads it
            wait_until_it_works(shell_process)  # it runs
            shell_process.send_signal(signal.SIGINT)
            said = read_until(controller, "quarrydb> ", seen)
            assert said.split() == ["Error:", "Interrupted", "quarrydb>"]
            os.write(controller, b"SELECT 41 + 1 AS answer;\n")
            assert "42" in read_until(controller, "quarrydb> ", seen)  # the connection works
        os.write(controller, b".quit\n")
        assert shell_process.wait(TIMEOUT) == 0
    finally:
        stop_shell(shell_process)
        os.close(controller)


@pytest.mark.parametrize("how", ["piped", "command"])
def test_ctrl_c_ends_a_script_with_a_short_message(how):
    script = f"SELECT 'go' AS started;\n{FOREVER}\nSELECT 'never' AS after;\n"
    args = ("-c", script) if how == "command" else ()
    shell_process = start_shell(*args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    try:
        if how == "piped":
            shell_process.stdin.write(script.encode())
        shell_process.stdin.close()
        read_until(shell_process.stdout.fileno(), "go", [], START_TIMEOUT)
        wait_until_it_works(shell_process)  # the next statement runs
        shell_process.send_signal(signal.SIGINT)
        assert shell_process.wait(TIMEOUT) == 130  # 128 + SIGINT
        assert shell_process.stderr.read().decode() == "Error: Interrupted\n"
        assert b"never" not in shell_process.stdout.read()
    finally:
        stop_shell(shell_process)


def stop_shell(shell_process: subprocess.Popen) -> None:
    """Whatever a test left it doing: killed, waited for, its pipes closed."""
    shell_process.kill()
    shell_process.wait()
    for stream in (shell_process.stdout, shell_process.stderr):
        if stream is not None:
            stream.close()


def test_read_only_opens_an_existing_database_without_writing(monkeypatch, capsys, tmp_path):
    database = str(tmp_path / "notes.quarry")
    run_shell(monkeypatch, capsys, database, "-c", "CREATE TABLE notes AS SELECT 1 AS id")
    status, out, err = run_shell(monkeypatch, capsys, database, "--read-only", "-c",
                                 "SELECT id FROM notes; INSERT INTO notes VALUES (2)")
    assert (status, column_names(out)) == (1, ["id"])
    assert "read-only" in err
    status, _, err = run_shell(monkeypatch, capsys, str(tmp_path / "none"), "--read-only")
    assert status == 1 and "no quarrydb database there" in err


def test_a_statement_inside_a_block_comment_does_not_run(monkeypatch, capsys, tmp_path):
    """`/* ... ;` left open at a line's end: the lines up to `*/` are comment. Before, the
    commented-out DELETE ran."""
    database = str(tmp_path / "db")
    script = ("CREATE TABLE t AS SELECT 1 AS a;\nSELECT 1 AS x; /* old cleanup;\n"
              "DELETE FROM t;\n.tables\n*/\nSELECT count(*) AS n FROM t;\n")
    status, out, err = run_shell(monkeypatch, capsys, database, stdin=script)
    assert (status, err) == (0, "")
    assert column_names(out) == ["Count", "x", "n"]
    assert out.rstrip().splitlines()[-2].strip("│ ") == "1"  # the row is still there


def test_output_to_a_reader_that_goes_away_stops_the_shell_quietly(tmp_path):
    script = "".join("SELECT * FROM range(5000);\n" for _ in range(5))
    shell_process = subprocess.Popen(SHELL, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
    shell_process.stdin.write(script.encode())
    shell_process.stdin.close()
    assert shell_process.stdout.read(200)  # the first result begins; then the reader leaves
    shell_process.stdout.close()
    assert shell_process.wait(timeout=120) == shell.BROKEN_PIPE_STATUS
    assert shell_process.stderr.read() == b""
