"""Where a model call is found in statement text: outside comments, strings and quoted
identifiers, as DuckDB's own tokenizer reads them."""

from __future__ import annotations

import pytest

from quarrydb.engine import statements

CALL = "classify(body, ['billing', 'bug'])"
MODEL_FUNCTIONS = frozenset({"embed", "classify", "caption", "transcribe", "similarity"})


@pytest.mark.parametrize("sql", [
    f"SELECT 1 AS \"it's\", {CALL} FROM t",
    f"SELECT {CALL} AS \"customer's topic\" FROM t",
    f"SELECT $$it's$$ AS note, {CALL} FROM t",
    f"SELECT $tag$it's$tag$ AS note, {CALL} FROM t",
    f"SELECT E'it\\'s' AS note, {CALL} FROM t",
    f"-- don't send billing rows\nSELECT {CALL} FROM t",
    f"SELECT /* the user's text */ {CALL} FROM t",
    f"SELECT /* nested /* it's */ still a comment */ {CALL} FROM t",
    f"SELECT body, -- customer's words\n {CALL} FROM t",
])
def test_an_apostrophe_outside_a_string_hides_no_call(cur, sql):
    """An apostrophe in a comment, a quoted name, a $$ string or an E'' escape used to open a
    "string" running over the call: the statement went to DuckDB, which has no classify."""
    cur.execute("CREATE TABLE t AS SELECT 'the app crashes' AS body")
    assert statements.mentions_any(sql, MODEL_FUNCTIONS)
    assert cur.execute(sql).fetchall()[0][-1] in ("billing", "bug")


@pytest.mark.parametrize("sql", [
    "SELECT 'classify(x)' FROM t",
    "SELECT $$classify(x)$$ FROM t",
    "SELECT E'it\\'s classify(x)' FROM t",
    "SELECT 1 -- classify(x)\nFROM t",
    "SELECT /* classify(x) */ 1 FROM t",
    'SELECT "classify"(x) FROM t',
])
def test_a_name_in_a_comment_string_or_quotes_is_no_call(sql):
    assert not statements.mentions_any(sql, MODEL_FUNCTIONS)


def test_a_returning_or_a_setting_beside_an_apostrophe_is_read(cur):
    """A RETURNING after a comment's apostrophe was hidden: its one row, a BIGINT named
    Count, was taken for DuckDB's count of rows written."""
    cur.execute('CREATE TABLE t ("Count" BIGINT)')
    cur.execute("INSERT INTO t /* don't */ VALUES (7) RETURNING \"Count\" -- it's")
    assert (cur.rowcount, cur.fetchall()) == (1, [(7,)])
    cur.execute("/* it's small */ SET model_batch_size = 4 -- don't")
    assert cur._session.settings.batch_size == 4


@pytest.mark.parametrize("statement", ["SET model_batch_size = $$8$$",
                                       "SET model_batch_size = $n$8$n$",
                                       'SET "model_batch_size" = 8'])
def test_a_setting_written_as_duckdb_takes_it(cur, statement):
    """Before: 'must be a positive integer, got $$8$$', and DuckDB's 'unrecognized
    configuration parameter' for the quoted name."""
    cur.execute(statement)
    cur.execute("SELECT current_setting('model_batch_size')")
    assert cur.fetchall() == [("8",)]


@pytest.mark.parametrize("sql, expected", [
    ("SELECT 'é\\' AS a", [("é\\",)]),  # a raw IndexError before
    (f"SELECT 'café \\' AS a, {CALL} FROM t", [("café \\", "bug")]),
])
def test_text_beyond_ascii_beside_what_needs_the_tokenizer(cur, sql, expected):
    """DuckDB's tokenizer counts UTF-8 bytes; the text's pieces were cut at those as if they
    were characters."""
    cur.execute("CREATE TABLE t AS SELECT 'the app crashes' AS body")
    assert cur.execute(sql).fetchall() == expected
    assert statements.code_only("/* café */ CHECKPOINT").strip() == "CHECKPOINT"
