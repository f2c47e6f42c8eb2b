"""Rule: run a WHERE's model predicates cheapest-per-rejected-row first, measured, not guessed.

For `WHERE a AND b AND c` with model predicates b and c, each is tried on a small sample of its
real inputs as the query runs: seconds per input (cost) and the share of sampled values that
pass (selectivity). The one with the lowest cost / (1 - selectivity) runs first; the next one's
input query then reads only the rows that survived it. The sample's results go to the cache, so
sampling costs nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from quarrydb.engine.planner import LOOKUP_ALIAS, VALUE, Candidate, is_lookup
from quarrydb.engine.sqltree import to_sql

SAMPLE_SIZE = 16
UNKNOWN_SELECTIVITY = 0.5


@dataclass
class Measurement:
    """What a sample told about one predicate."""

    cost_per_input: float  # seconds of model time per value sent to the model
    selectivity: float | None  # share of sampled values that pass; None when not measurable
    sampled: int

    @property
    def rank(self) -> float:
        passing = UNKNOWN_SELECTIVITY if self.selectivity is None else self.selectivity
        return self.cost_per_input / max(1.0 - passing, 1e-3)


def selectivity_sql(candidate: Candidate, table: str, function_names: frozenset[str]
                    ) -> str | None:
    """SQL that computes the share of a stage table's values passing the candidate's conjunct.

    Only when the conjunct reads nothing but the call's values (e.g. `classify(x, L) = 'spam'`)
    and those of stages already run (a constant `embed('q')`, now a lookup); otherwise the
    selectivity cannot be told from the call's values alone, and DuckDB could not run the SQL:
    it knows no model function."""
    if candidate.conjunct is None:
        return None
    probe = candidate.conjunct.copy()
    node = next(n for n in probe.walk() if n == candidate.call_node)
    node.replace(exp.column(VALUE))
    if any(str(n.this).lower() in function_names for n in probe.find_all(exp.Anonymous)):
        return None  # another model call, not computed yet
    if not all(is_lookup(s) for s in probe.find_all(exp.Select)):
        return None  # a subquery of the statement's own: it may read what the probe cannot
    if not all(_reads_only_values(c) for c in probe.find_all(exp.Column)):
        return None
    return f"SELECT avg(CASE WHEN {to_sql(probe)} THEN 1.0 ELSE 0.0 END) FROM {table}"


def _reads_only_values(column: exp.Column) -> bool:
    """The call's value itself, or a column of a stage lookup `(SELECT lookup.value FROM ...
    AS lookup WHERE lookup.key0 = <constant>)`: no column of the query's own rows."""
    if column.find_ancestor(exp.Select) is None:
        return column.name == VALUE and not column.table
    return column.table == LOOKUP_ALIAS


def order(measured: dict[str, Measurement]) -> list[str]:
    """Candidate identities, the one to run first first."""
    return sorted(measured, key=lambda identity: measured[identity].rank)
