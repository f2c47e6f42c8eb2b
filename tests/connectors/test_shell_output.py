"""The shell prints each result as DuckDB's own CLI does: DuckDB's box renderer draws it, so
every value reads as DuckDB writes it, wide cells are cut short and a long result shows its
head and tail without reading every row."""

from __future__ import annotations

import contextlib
import io

import duckdb
import pytest

from quarrydb.connectors import shell


def shell_output(monkeypatch, capsys, sql: str) -> str:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    status = shell.main(["-c", sql])
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    return out


def duckdb_box(sql: str) -> str:
    """What DuckDB's own renderer draws for the query, run by DuckDB alone, as its CLI does."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        duckdb.connect().sql(sql).show(max_rows=40)  # as DuckDB's CLI (.maxrows)
    return printed.getvalue().rstrip("\n") + "\n"


def cells(box: str) -> list[list[str]]:
    """Each line of a box's table (not its footer) as its cells' text."""
    return [[cell.strip() for cell in line.split("│")[1:-1]]
            for line in box.splitlines() if line.startswith("│")]


@pytest.mark.parametrize("sql", [
    # Values pyarrow cannot make Python values of: the result was lost to an OverflowError.
    "SELECT 'infinity'::DATE AS d, '-infinity'::TIMESTAMP AS ts, DATE '20000-01-01' AS far",
    # A NULL in a list of DOUBLEs: a TypeError from the formatter.
    "SELECT [2.5, NULL]::DOUBLE[] AS l",
    # Values that were shown wrongly or as Python writes them.
    "SELECT TIME '24:00:00' AS t, '101'::BIT AS b, INTERVAL 3 DAY AS i",
    "SELECT [2.5, NULL] AS l, MAP {'k': 1.5} AS m, ['a', NULL] AS s",
    "SELECT 1234567.891::DOUBLE AS x, 100000.0::DOUBLE AS y, [1.5::DOUBLE, 2] AS z",
    "SELECT 'ｆｕｌｌ幅テキスト' AS wide, 'narrow' AS n",
    # Types the engine gives DuckDB's lossless Arrow of, or Arrow of another type.
    "SELECT '12:00:00+05'::TIMETZ AS tz, 340282366920938463463374607431768211455::UHUGEINT AS u,"
    " 123::HUGEINT AS h, '01745e86-d18d-44e1-8d1f-6cfc2a4c0f2e'::UUID AS id, [1, 2]::INT[2] AS a",
    # A few rows of a long embedding: DuckDB cuts each cell short.
    "SELECT [x / 384 FOR x IN range(384)]::FLOAT[384] AS e, i FROM range(50) t(i)",
    "SELECT 1 AS a WHERE false",
])
def test_values_read_as_duckdb_writes_them(monkeypatch, capsys, sql):
    out = shell_output(monkeypatch, capsys, sql)
    assert out == duckdb_box(sql)
    assert max(len(line) for line in out.splitlines()) <= 130  # an embedding prints compactly


def test_a_long_result_shows_its_head_and_tail_and_counts_every_row(monkeypatch, capsys):
    sql = "SELECT range AS i, range::VARCHAR AS s FROM range(1000000)"
    out = shell_output(monkeypatch, capsys, sql)
    shown = cells(out)  # as DuckDB's CLI: the first 20 rows, dots, the last 20
    expected = [*map(str, range(20)), *"···", *map(str, range(999980, 1000000))]
    assert shown == [["i", "s"], ["int64", "varchar"], *([v, v] for v in expected)]
    footer = out.split("┘\n")[1]
    assert " ".join(footer.split()).startswith("1000000 rows (40 shown)")


def test_settings_of_the_session_apply_to_values(monkeypatch, capsys):
    out = shell_output(monkeypatch, capsys, "SET TimeZone = 'Asia/Kolkata';"
                       " SELECT TIMESTAMPTZ '2024-01-01 00:00:00+00' AS t")
    assert cells(out) == [["t"], ["timestamp with time zone"], ["2024-01-01 05:30:00+05:30"]]
