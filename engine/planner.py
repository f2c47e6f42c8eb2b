"""Plan: turn each distinct model call into a stage, and the statement into final DuckDB SQL.

A stage's input query is built by DuckDB's own SQL: the distinct argument values of the call,
taken from the call's scope (its FROM and joins) with every WHERE predicate that involves no
pending model call, so filtered-out rows never reach a model. The call itself is replaced by a
lookup into the stage's result table, a scalar subquery that DuckDB runs as a hash join, so every
query shape DuckDB supports keeps working around it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from quarrydb.engine.binder import MARKER_META, ModelCall
from quarrydb.engine.errors import InternalError
from quarrydb.engine.sqltree import (
    DIALECT,
    conjuncts,
    from_clause,
    select_sources,
    to_sql,
    vectors_put_back,
    with_clause,
)
from quarrydb.udfs import Registry

# Names the engine gives stage tables' columns and their alias in the SQL it writes. They are
# correlated with the query's own columns: a query column of the same name would be read as
# the stage's (`WHERE __q.__qk0 = __qk0` is always true), so they are in the engine's own
# __quarry_ namespace, which a statement with model calls may not use (session.py).
RESERVED_PREFIX = "__quarry_"
KEY = RESERVED_PREFIX + "key{}"
VALUE = RESERVED_PREFIX + "value"
LOOKUP_ALIAS = RESERVED_PREFIX + "lookup"  # the stage table, in the subquery replacing a call
WRITES = (exp.Update, exp.Delete)  # writes whose rows a model call may read


@dataclass
class Stage:
    """One model function over one set of distinct inputs."""

    number: int
    table: str
    call: ModelCall  # a representative: all occurrences share function, model, options
    input_sql: str
    occurrences: int = 1


@dataclass
class Candidate:
    """A group of identical calls whose inputs are ready to compute.

    What rules need to know of the calls' place in the query is read when the candidate is made:
    committing it replaces the calls in the tree."""

    identity: str
    calls: list[ModelCall]
    inputs: list[exp.Select]
    is_predicate: bool = False
    conjunct: exp.Expression | None = None  # a copy of the one WHERE conjunct holding the call
    call_node: exp.Expression | None = None  # a copy of the call, as it appears in `conjunct`

    def __post_init__(self) -> None:
        self.is_predicate = any(_in_predicate(c) for c in self.calls)
        call = self.calls[0]
        where = call.node.find_ancestor(exp.Where)
        if where is not None and len(self.calls) == 1:
            held = next((c for c in conjuncts(where.this) if call.node in c.walk()), None)
            if held is not None:
                self.conjunct, self.call_node = held.copy(), call.node.copy()

    @property
    def input_sql(self) -> str:
        return " UNION ".join(to_sql(q) for q in self.inputs)


class StagePlanner:
    """Plans stages one at a time, so the executor can pick among ready predicates by cost.

    optimize=False is the baseline the optimizer is measured against: no predicate reaches the
    input queries, and every occurrence of a call is a stage of its own.
    """

    def __init__(self, tree: exp.Expression, calls: list[ModelCall], registry: Registry,
                 prefix: str, optimize: bool = True) -> None:
        self.tree = tree
        self.registry = registry
        self.prefix = prefix
        self.optimize = optimize
        name_result_columns(tree, calls)
        self.pending: dict[str, list[ModelCall]] = {}
        for index, call in enumerate(calls):
            identity = call.identity if optimize else f"{call.identity}#{index}"
            self.pending.setdefault(identity, []).append(call)
        self.stages: list[Stage] = []

    @property
    def done(self) -> bool:
        return not self.pending

    def ready(self) -> list[Candidate]:
        """Groups whose input queries need no pending call, predicates first."""
        found = []
        for identity, group in self.pending.items():
            inputs = [input_query(call, self.optimize) for call in group]
            if not any(_has_model_call(q, self.registry) for q in inputs):
                found.append(Candidate(identity, group, inputs))
        if not found:
            raise InternalError("could not order the model calls of this statement")
        return sorted(found, key=lambda c: not c.is_predicate)

    def commit(self, candidate: Candidate) -> Stage:
        """Make the candidate a stage and replace its calls by lookups into the stage's table."""
        group = self.pending.pop(candidate.identity)
        table = f"{self.prefix}{len(self.stages) + 1}"
        stage = Stage(len(self.stages) + 1, table, group[0], candidate.input_sql, len(group))
        for call in group:
            call.node.replace(_lookup(table, call.keys))
        self.stages.append(stage)
        return stage

    def ready_or_waiting(self) -> list[Candidate]:
        """Every pending group, ready or not (its inputs may still need other stages)."""
        return [Candidate(i, g, []) for i, g in self.pending.items()]

    @property
    def final_sql(self) -> str:
        return to_sql(self.tree)


def _has_model_call(node: exp.Expression, registry: Registry) -> bool:
    names = registry.function_names
    return any(str(n.this).lower() in names for n in node.find_all(exp.Anonymous))


def _in_predicate(call: ModelCall) -> bool:
    return call.node.find_ancestor(exp.Where, exp.Having, exp.Join) is not None


def _lookup(table: str, keys: list[exp.Expression]) -> exp.Subquery:
    """(SELECT l.value FROM stage AS l WHERE l.key0 = <arg0> AND ...), names prefixed."""
    condition = exp.and_(
        *[exp.EQ(this=exp.column(KEY.format(i), LOOKUP_ALIAS), expression=k.copy()) for i, k in
          enumerate(keys)]
    )
    query = exp.select(exp.column(VALUE, LOOKUP_ALIAS)).from_(
        exp.to_table(table).as_(LOOKUP_ALIAS))
    return query.where(condition).subquery()


# --- result column names ----------------------------------------------------------------------


def name_result_columns(tree: exp.Expression, calls: list[ModelCall]) -> None:
    """Alias each unaliased select-list item that holds a model call with its SQL as written.

    DuckDB names such a column by its expression; once the call is replaced by a lookup into a
    stage table, that name would be the lookup's SQL. Every select list is named, not only the
    outermost: `SELECT * FROM (SELECT classify(...) FROM t)` shows the inner list's names."""
    call_nodes = {id(call.node) for call in calls}
    lists = [*tree.find_all(exp.Select), *tree.find_all(exp.Returning)]
    for item in [item for columns in lists for item in columns.expressions]:
        if isinstance(item, (exp.Alias, exp.Star)):
            continue
        if not any(id(node) in call_nodes for node in item.walk()):
            continue
        alias = exp.Alias(alias=exp.to_identifier(written_sql(item), quoted=True))
        item.replace(alias)
        alias.set("this", item)  # the node itself, not a copy: the calls point into it


def written_sql(node: exp.Expression) -> str:
    """The expression as the user wrote it (modulo spacing): functions in lower case, as DuckDB
    prints them, and input markers such as image(x) put back."""
    printed = node.copy()
    for call in list(printed.find_all(exp.Anonymous)):
        marker = call.meta.get(MARKER_META)
        if marker and call.expressions:
            call.expressions[0].replace(
                exp.Anonymous(this=marker, expressions=[call.expressions[0].copy()]))
    return vectors_put_back(printed.sql(dialect=DIALECT, normalize_functions="lower"))


# --- input queries -----------------------------------------------------------------------------


def input_query(call: ModelCall, optimize: bool = True) -> exp.Select:
    """SELECT DISTINCT <call's per-row arguments> FROM <its scope> WHERE <safe predicates>.

    Without optimize: every row of the scope's sources, no predicate, no DISTINCT."""
    scope = _scope_of(call)
    keys = [k.copy() for k in call.keys]
    if isinstance(scope, exp.Select) and call.node.find_ancestor(exp.Order) is not None:
        keys = [_expand_aliases(k, scope) for k in keys]
    query = exp.select(*[k.as_(KEY.format(i)) for i, k in enumerate(keys)])
    if optimize:
        query = query.distinct()
    if isinstance(scope, exp.Select):
        _add_select_sources(query, scope, keys, optimize)
    elif isinstance(scope, WRITES):
        for i, table in enumerate(_sources(scope)):
            if i == 0:
                query = query.from_(table.copy())
            else:
                query = query.join(table.copy(), join_type="cross")
        if optimize:
            _add_safe_predicates(query, _local_predicates(scope))
    return _with_ctes(query, call.node)


def _scope_of(call: ModelCall) -> exp.Select | exp.Update | exp.Delete | None:
    """The query whose rows feed the call: the nearest one that has every table the arguments
    name (a call in a correlated subquery reads the outer query's rows)."""
    qualifiers = {c.table for k in call.keys for c in k.find_all(exp.Column) if c.table}
    nearest = call.node.find_ancestor(exp.Select, *WRITES)
    scope = nearest
    while scope is not None:
        if qualifiers <= _source_names(scope):
            return scope
        scope = scope.find_ancestor(exp.Select, *WRITES)
    return nearest


def _sources(scope: exp.Expression) -> list[exp.Expression]:
    """The tables a scope reads rows from: a write's target, its FROM (UPDATE) or USING
    (DELETE) tables; a SELECT's FROM item and joins."""
    if isinstance(scope, WRITES):
        read = list(scope.args.get("using") or []) if isinstance(scope, exp.Delete) else []
        from_ = from_clause(scope) if isinstance(scope, exp.Update) else None
        if from_ is not None:  # sqlglot hangs `FROM u, v`'s v (or `u JOIN v`'s) on u
            first = from_.this.copy()
            first.set("joins", None)
            read = [first, *[j.this for j in from_.this.args.get("joins") or []]]
        return [scope.this, *read]
    return select_sources(scope) if isinstance(scope, exp.Select) else []


def _source_names(scope: exp.Expression) -> set[str]:
    return {t.alias_or_name for t in _sources(scope)}


def _local_predicates(scope: exp.Select | exp.Update | exp.Delete) -> list[exp.Expression]:
    """WHERE conjuncts that read only this scope's own tables (not an outer query's)."""
    where = scope.args.get("where")
    names = _source_names(scope)
    return [
        p for p in conjuncts(where.this if where else None)
        if all(c.table in names for c in p.find_all(exp.Column)
               if c.table and c.find_ancestor(exp.Select, *WRITES) is scope)
    ]


def _add_select_sources(
    query: exp.Select, scope: exp.Select, keys: list[exp.Expression], optimize: bool
) -> None:
    source = from_clause(scope)
    if source is None:
        return
    joins = list(scope.args.get("joins") or [])
    tables = _sources(scope)
    predicates = _local_predicates(scope) if optimize else []
    used = _sources_used(keys, tables) if optimize else None
    if used is not None and len(used) < len(tables):
        # The call reads only some of the joined sources: read those alone (n + m, not n x m).
        for i, table in enumerate(used):
            if i == 0:
                query.from_(table.copy(), copy=False)
            else:
                query.join(table.copy(), join_type="cross", copy=False)
        names = {t.alias_or_name for t in used}
        predicates = [p for p in predicates if _columns_within(p, names)]
    else:
        query.from_(source.this.copy(), copy=False)
        for join in joins:
            join = join.copy()
            on = join.args.get("on")
            if on is not None and _contains_call_name(on):
                join.set("on", exp.true())
            query.append("joins", join)
    _add_safe_predicates(query, predicates)
    if any(k.find(exp.AggFunc) for k in keys):
        for name in ("group", "having"):
            if scope.args.get(name) is not None and not _contains_call_name(scope.args[name]):
                query.set(name, scope.args[name].copy())


def _add_safe_predicates(query: exp.Select, predicates: list[exp.Expression]) -> None:
    """Keep predicates without pending model calls: they can only shrink the input."""
    safe = [p.copy() for p in predicates if not _contains_call_name(p)]
    if safe:
        query.where(exp.and_(*safe), copy=False)


def _contains_call_name(node: exp.Expression) -> bool:
    from quarrydb.udfs import default_registry

    return _has_model_call(node, default_registry())


def _sources_used(keys: list[exp.Expression], tables: list[exp.Expression]) -> list | None:
    """The sources the arguments read, or None when that cannot be told (unqualified columns)."""
    columns = [c for k in keys for c in k.find_all(exp.Column)]
    if not columns or any(not c.table for c in columns) or any(k.find(exp.Select) for k in keys):
        return None
    wanted = {c.table for c in columns}
    used = [t for t in tables if t.alias_or_name in wanted]
    return used if {t.alias_or_name for t in used} == wanted else None


def _columns_within(node: exp.Expression, names: set[str]) -> bool:
    columns = list(node.find_all(exp.Column))
    return bool(columns) and all(c.table in names for c in columns)


def _expand_aliases(key: exp.Expression, scope: exp.Select) -> exp.Expression:
    """ORDER BY may name select-list aliases; the input query must see their expressions."""
    aliases = {
        e.alias: e.this for e in scope.expressions if isinstance(e, exp.Alias) and e.alias
    }
    if not aliases:
        return key

    def swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not node.table and node.name in aliases:
            return aliases[node.name].copy()
        return node

    return key.transform(swap)


def _with_ctes(query: exp.Select, node: exp.Expression) -> exp.Select:
    """Give the input query the CTEs it reads, from every enclosing WITH."""
    withs: list[exp.With] = []
    ancestor = node.parent
    while ancestor is not None:
        with_ = with_clause(ancestor)
        if with_ is not None:
            withs.append(with_)
        ancestor = ancestor.parent
    available: dict[str, exp.CTE] = {}
    for with_ in reversed(withs):  # outer first: inner CTEs may read outer ones
        for cte in with_.expressions:
            available[cte.alias] = cte
    recursive = any(bool(w.args.get("recursive")) for w in withs)
    needed: list[str] = []
    frontier: list[exp.Expression] = [query]
    while frontier:
        for table in frontier.pop().find_all(exp.Table):
            name = table.name
            if name in available and name not in needed and not table.db:
                needed.append(name)
                frontier.append(available[name].this)
    if not needed:
        return query
    ordered = [cte for name, cte in available.items() if name in needed]  # definition order
    return _attach_with(query, ordered, recursive)


def _attach_with(query: exp.Select, ctes: list[exp.CTE], recursive: bool) -> exp.Select:
    key = "with_" if "with_" in exp.Select.arg_types else "with"
    query.set(key, exp.With(expressions=[c.copy() for c in ctes], recursive=recursive))
    return query
