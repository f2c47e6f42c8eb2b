"""A stage's input query fails as the statement without the model call fails: DuckDB's error,
of DuckDB's DB-API class (an IO Error is an OperationalError, a Conversion Error a DataError)."""

from __future__ import annotations

import pytest

import quarrydb

L = "['billing', 'bug']"


@pytest.mark.parametrize(("source", "error"), [
    ("read_parquet('/nonexistent/quarry_missing.parquet')", quarrydb.OperationalError),
    ("(SELECT 'a' AS body) WHERE body::INT > 0", quarrydb.DataError),
])
def test_a_stage_input_error_keeps_duckdbs_class(cur, source, error):
    with pytest.raises(error) as plain:
        cur.execute(f"SELECT upper(body) FROM {source}")
    with pytest.raises(error) as model:
        cur.execute(f"SELECT classify(body, {L}) FROM {source}")
    assert type(model.value) is type(plain.value)
    assert str(plain.value).splitlines()[0] in str(model.value)
