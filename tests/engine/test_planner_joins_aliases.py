"""Model calls around outer, SEMI, ANTI and ASOF joins, correlated subqueries, select-list
aliases that reuse a column's name, and the shapes refused before any model runs (COLUMNS(...)
in a call, macros, PIVOT ... ON a call, a FROM-less LATERAL subquery).

Each answer is compared to plain DuckDB over tables of precomputed labels (a select-list call,
the plainest path), or to the same query with the optimizer off where that path is right."""

from __future__ import annotations

import pytest

import quarrydb

L = "['praise', 'billing']"
A = [(1, "great product, thank you"), (2, "charge me less please"), (3, "you overcharged me")]
B = [(1, "I love it, great app"), (2, "refund my invoice"), (4, "wonderful support team")]


@pytest.fixture
def ab(cur):
    cur.execute("CREATE TABLE a (id INTEGER, body VARCHAR)")
    cur.executemany("INSERT INTO a VALUES (?, ?)", A)
    cur.execute("CREATE TABLE b (bid INTEGER, q VARCHAR)")
    cur.executemany("INSERT INTO b VALUES (?, ?)", B)
    # The same rows with each text's label computed once, for plain DuckDB to answer from.
    cur.execute(f"CREATE TABLE la AS SELECT id, body, classify(body, {L}) AS k FROM a")
    cur.execute(f"CREATE TABLE lb AS SELECT bid, q, classify(q, {L}) AS k FROM b")
    return cur


def _rows(cur, sql: str) -> list[tuple]:
    cur.execute(sql)
    return cur.fetchall()


def _both_ways(cur, sql: str) -> list[tuple]:
    """The answer with the optimizer on; it must be the baseline's too."""
    on = _rows(cur, sql)
    cur.execute("SET optimizer = off")
    off = _rows(cur, sql)
    cur.execute("SET optimizer = on")
    assert on == off
    return on


# --- outer joins: a WHERE that keeps the rows ON rejected ---------------------------------------


@pytest.mark.parametrize("query, plain", [
    (f"SELECT a.id FROM a LEFT JOIN b ON a.id = b.bid AND classify(b.q, {L}) = 'praise'"
     " WHERE b.bid IS NULL ORDER BY 1",
     "SELECT la.id FROM la LEFT JOIN lb ON la.id = lb.bid AND lb.k = 'praise'"
     " WHERE lb.bid IS NULL ORDER BY 1"),
    (f"SELECT a.id FROM a LEFT JOIN b ON a.id = b.bid AND classify(b.q, {L}) = 'praise'"
     " WHERE coalesce(b.bid, 0) = 0 ORDER BY 1",
     "SELECT la.id FROM la LEFT JOIN lb ON la.id = lb.bid AND lb.k = 'praise'"
     " WHERE coalesce(lb.bid, 0) = 0 ORDER BY 1"),
    (f"SELECT b.bid FROM a RIGHT JOIN b ON a.id = b.bid AND classify(a.body, {L}) = 'billing'"
     " WHERE a.id IS NULL ORDER BY 1",
     "SELECT lb.bid FROM la RIGHT JOIN lb ON la.id = lb.bid AND la.k = 'billing'"
     " WHERE la.id IS NULL ORDER BY 1"),
    (f"SELECT a.id, b.bid FROM a FULL JOIN b ON a.id = b.bid AND classify(b.q, {L}) = 'billing'"
     " WHERE a.id IS NULL OR b.bid IS NULL ORDER BY 1, 2",
     "SELECT la.id, lb.bid FROM la FULL JOIN lb ON la.id = lb.bid AND lb.k = 'billing'"
     " WHERE la.id IS NULL OR lb.bid IS NULL ORDER BY 1, 2"),
    (f"SELECT a.id, b.q FROM a LEFT JOIN b ON a.id = b.bid AND classify(b.q, {L}) = 'praise'"
     " WHERE b.q IS NULL OR b.q LIKE 'refund%' ORDER BY 1",
     "SELECT la.id, lb.q FROM la LEFT JOIN lb ON la.id = lb.bid AND lb.k = 'praise'"
     " WHERE lb.q IS NULL OR lb.q LIKE 'refund%' ORDER BY 1"),
])
def test_outer_join_where_keeping_unmatched_rows(ab, query, plain):
    assert _both_ways(ab, query) == _rows(ab, plain)


def test_outer_join_where_on_the_preserved_side_still_filters_the_inputs(ab):
    ab.execute(f"SELECT a.id, b.bid FROM a LEFT JOIN b ON classify(a.body, {L}) = 'billing'"
               " AND a.id = b.bid WHERE a.id = 2")
    got = ab.fetchall()
    assert ab.stats["stages"][0]["rows_in"] == 1  # only a's row 2 was read for the model
    assert got == _rows(ab, "SELECT la.id, lb.bid FROM la LEFT JOIN lb ON"
                            " la.k = 'billing' AND la.id = lb.bid WHERE la.id = 2")


def test_call_over_a_null_extended_table_sees_its_nulls(ab):
    """Read alone, b has no NULL row; the LEFT JOIN gives one where a row of a found no match."""
    query = (f"SELECT a.id, classify(coalesce(b.q, 'I want my money back'), {L}) FROM a"
             " LEFT JOIN b ON a.id = b.bid ORDER BY 1")
    _, plain = _rows(ab, f"SELECT 1, classify('I want my money back', {L})")[0]
    expected = [(i, k if k is not None else plain) for i, k in _rows(
        ab, "SELECT la.id, lb.k FROM la LEFT JOIN lb ON la.id = lb.bid ORDER BY 1")]
    assert _both_ways(ab, query) == expected


def test_a_call_over_the_null_side_waits_for_the_call_in_the_outer_joins_on(ab):
    """The WHERE's call reads b's NULLs, which the LEFT JOIN gives only once its ON's call is a
    lookup: read first (ON relaxed to TRUE), its inputs missed them. The first run happened to
    order the calls right; a second run (all cached) or the baseline did not."""
    query = (f"SELECT a.id FROM a LEFT JOIN b ON a.id = b.bid AND classify(b.q, {L}) = 'billing'"
             f" WHERE classify(coalesce(b.q, 'I want my money back'), {L}) = 'billing'"
             " ORDER BY 1")
    _, plain = _rows(ab, f"SELECT 1, classify('I want my money back', {L})")[0]
    expected = _rows(ab, "SELECT la.id FROM la LEFT JOIN lb ON la.id = lb.bid AND lb.k ="
                         f" 'billing' WHERE coalesce(lb.k, '{plain}') = 'billing' ORDER BY 1")
    assert expected  # the case: some rows of a found no billing match
    for _ in range(2):
        assert _both_ways(ab, query) == expected


# --- a select alias that reuses a column's name --------------------------------------------------


def test_order_by_call_reads_the_column_not_the_alias_of_its_name(cur):
    cur.execute("CREATE TABLE notes (id INTEGER, body VARCHAR)")
    cur.executemany("INSERT INTO notes VALUES (?, ?)", [
        (1, "Please refund my invoice"), (2, "The app crashes on start"), (3, "Great work")])
    query = ("SELECT id, left(body, 8) AS body FROM notes ORDER BY"
             " similarity(embed(body), embed('the app crashes on start')) DESC LIMIT 1")
    assert _both_ways(cur, query) == [(2, "The app ")]


def test_window_order_by_call_reads_the_column_not_the_alias(ab):
    query = (f"SELECT id, upper(body) AS body, row_number() OVER (ORDER BY classify(body, {L}),"
             " id) FROM a ORDER BY id")
    plain = ("SELECT id, upper(body), row_number() OVER (ORDER BY k, id) FROM la ORDER BY id")
    assert _both_ways(ab, query) == _rows(ab, plain)


# --- columns of the other side or of the outer query, unqualified -------------------------------


@pytest.mark.parametrize("query, plain", [
    (f"SELECT id FROM a WHERE EXISTS (SELECT 1 FROM b WHERE classify(q, {L}) ="
     f" classify(body, {L})) ORDER BY 1",
     "SELECT id FROM la WHERE EXISTS (SELECT 1 FROM lb WHERE lb.k = la.k) ORDER BY 1"),
    (f"SELECT id FROM a WHERE NOT EXISTS (SELECT 1 FROM b WHERE classify(q, {L}) = 'billing'"
     f" AND classify(body, {L}) = 'praise' AND bid = id) ORDER BY 1",
     "SELECT id FROM la WHERE NOT EXISTS (SELECT 1 FROM lb WHERE lb.k = 'billing'"
     " AND la.k = 'praise' AND bid = id) ORDER BY 1"),
    (f"SELECT id, (SELECT count(*) FROM b WHERE classify(q, {L}) = classify(body, {L}))"
     " FROM a ORDER BY 1",
     "SELECT id, (SELECT count(*) FROM lb WHERE lb.k = la.k) FROM la ORDER BY 1"),
    (f"SELECT id FROM a SEMI JOIN b ON a.id = b.bid AND classify(q, {L}) = 'praise' ORDER BY 1",
     "SELECT id FROM la SEMI JOIN lb ON la.id = lb.bid AND lb.k = 'praise' ORDER BY 1"),
    (f"SELECT id FROM a ANTI JOIN b ON a.id = b.bid AND classify(q, {L}) = 'praise' ORDER BY 1",
     "SELECT id FROM la ANTI JOIN lb ON la.id = lb.bid AND lb.k = 'praise' ORDER BY 1"),
    (f"SELECT id, bid FROM a ASOF JOIN b ON classify(body, {L}) = classify(q, {L})"
     " AND a.id >= b.bid ORDER BY 1",
     "SELECT id, bid FROM la ASOF JOIN lb ON la.k = lb.k AND la.id >= lb.bid ORDER BY 1"),
])
def test_unqualified_columns_of_another_query_or_side(ab, query, plain):
    assert _both_ways(ab, query) == _rows(ab, plain)


# --- refused before any model runs ---------------------------------------------------------------


@pytest.mark.parametrize("sql, says", [
    (f"SELECT bid, classify(COLUMNS('q'), {L}) FROM b", "COLUMNS"),
    (f"SELECT bid, classify(COLUMNS('^q$'), {L}) FROM b", "COLUMNS"),
    (f"CREATE MACRO topic(x) AS classify(x, {L})", "macro cannot call a model"),
    (f"CREATE MACRO topics() AS TABLE SELECT classify(q, {L}) FROM b",
     "macro cannot call a model"),
    (f"PIVOT b ON classify(q, {L}) USING count(*)", "pivot a subquery"),
    (f"SELECT * FROM a, LATERAL (SELECT classify(body, {L}) AS x)", "outer select"),
    (f"SELECT a.id FROM a JOIN (b JOIN la ON la.id = b.bid AND classify(b.q, {L}) = 'praise')"
     " ON a.id = b.bid", "write the inner join as a subquery"),  # was an InternalError
])
def test_refused_before_any_model_runs(ab, sql, says):
    with pytest.raises(quarrydb.NotSupportedError, match=says):
        ab.execute(sql)
    assert (ab.stats or {}).get("model_inputs", 0) == 0


def test_the_pivot_the_refusal_suggests_works(ab):
    query = (f"SELECT * FROM (PIVOT (SELECT bid, classify(q, {L}) AS topic FROM b) ON topic"
             " IN ('praise', 'billing') USING count(*) GROUP BY bid) ORDER BY bid")
    plain = ("SELECT * FROM (PIVOT (SELECT bid, k AS topic FROM lb) ON topic"
             " IN ('praise', 'billing') USING count(*) GROUP BY bid) ORDER BY bid")
    assert _rows(ab, query) == _rows(ab, plain)


def test_the_baseline_groups_by_a_call_as_the_optimizer_does(ab):
    """With the optimizer off every occurrence of a call was a stage of its own, so the select
    list's call was not the one grouped by: DuckDB's 'q must appear in the GROUP BY clause'."""
    query = (f"SELECT upper(classify(q, {L})) AS k, count(*) FROM b GROUP BY classify(q, {L})"
             f" HAVING classify(q, {L}) IS NOT NULL ORDER BY 1")
    expected = _rows(ab, "SELECT upper(k), count(*) FROM lb GROUP BY k ORDER BY 1")
    assert _both_ways(ab, query) == expected


def test_two_outer_joins_each_with_a_call_in_its_on(ab):
    """Each ON's call reads only its own join's table, which the other join does not
    null-extend: neither waits for the other (both waiting was 'could not order')."""
    ab.execute("CREATE TABLE c AS SELECT bid + 1 AS cid, q FROM b")
    ab.execute(f"CREATE TABLE lc AS SELECT cid, q, classify(q, {L}) AS k FROM c")
    query = (f"SELECT a.id, b.bid, c.cid FROM a LEFT JOIN b ON a.id = b.bid AND"
             f" classify(b.q, {L}) = 'praise' LEFT JOIN c ON a.id = c.cid AND"
             f" classify(c.q, {L}) = 'billing' ORDER BY 1")
    expected = _rows(ab, "SELECT la.id, lb.bid, lc.cid FROM la LEFT JOIN lb ON la.id = lb.bid"
                         " AND lb.k = 'praise' LEFT JOIN lc ON la.id = lc.cid AND"
                         " lc.k = 'billing' ORDER BY 1")
    assert _both_ways(ab, query) == expected


@pytest.fixture
def abc(cur):
    cur.execute("CREATE TABLE a AS SELECT * FROM (VALUES (1), (2)) t(id)")
    cur.execute("CREATE TABLE b AS SELECT * FROM (VALUES (10, 1, 'invoice is wrong'),"
                " (20, 2, 'thanks so much')) t(id, aid, q)")
    cur.execute("CREATE TABLE c AS SELECT * FROM (VALUES (100, 'great job team'),"
                " (101, 'charged twice')) t(id, r)")
    for table, column in (("b", "q"), ("c", "r")):
        cur.execute(f"CREATE TABLE l{table} AS SELECT *, classify({column}, {L}) AS k"
                    f" FROM {table}")
    return cur


def test_a_right_join_reading_what_an_earlier_outer_joins_call_null_extends(abc):
    """The RIGHT JOIN's call reads coalesce(b.q, ...), which needs the LEFT JOIN's ON computed
    first; that call reads b.q bare (a NULL never reaches a model), so it need not wait for
    the RIGHT JOIN, which null-extends b too. Both waiting gave wrong rows once cached."""
    query = (f"SELECT a.id, b.id, c.id FROM a LEFT JOIN b ON a.id = b.aid AND classify(b.q, {L})"
             f" = 'billing' RIGHT JOIN c ON classify(coalesce(b.q, 'none'), {L}) ="
             f" classify(c.r, {L}) ORDER BY 3")
    _, none = _rows(abc, f"SELECT 1, classify('none', {L})")[0]
    expected = _rows(abc, "SELECT a.id, lb.id, lc.id FROM a LEFT JOIN lb ON a.id = lb.aid AND"
                          f" lb.k = 'billing' RIGHT JOIN lc ON coalesce(lb.k, '{none}') = lc.k"
                          " ORDER BY 3")
    for _ in range(2):
        assert _both_ways(abc, query) == expected


def test_outer_join_calls_that_each_need_the_other_first_are_refused(abc):
    query = (f"SELECT a.id FROM a LEFT JOIN b ON a.id = b.aid AND classify(coalesce(b.q, 'x'),"
             f" {L}) = 'billing' FULL JOIN c ON classify(coalesce(b.q, 'none'), {L}) ="
             f" classify(c.r, {L})")
    with pytest.raises(quarrydb.NotSupportedError, match="compute one of them in a subquery"):
        abc.execute(query)


@pytest.mark.parametrize("group_by", ["GROUP BY 1 HAVING classify(q, {L}) <> 'bug'",
                                      "GROUP BY k ORDER BY classify(q, {L})"])
def test_the_baseline_groups_by_a_call_named_by_position_or_alias(ab, group_by):
    query = f"SELECT classify(q, {L}) AS k, count(*) AS n FROM b {group_by.format(L=L)}"
    assert sorted(_both_ways(ab, query)) == sorted(
        _rows(ab, "SELECT k, count(*) FROM lb GROUP BY k HAVING k <> 'bug'")
        if "HAVING" in group_by else _rows(ab, "SELECT k, count(*) FROM lb GROUP BY k"))


def test_a_call_reading_its_subquerys_and_the_outer_querys_columns_is_refused(ab):
    with pytest.raises(quarrydb.NotSupportedError, match="both its subquery and the query"):
        ab.execute(f"SELECT id FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.bid = a.id AND"
                   f" classify(coalesce(b.q, a.body), {L}) = 'praise')")
