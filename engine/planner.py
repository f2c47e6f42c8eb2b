"""Plan: turn each distinct model call into a stage, and the statement into final DuckDB SQL.

A stage's input query is built by DuckDB's own SQL: the distinct argument values of the call,
taken from the call's scope (its FROM and joins) with every WHERE predicate that involves no
pending model call, so filtered-out rows never reach a model. The call itself is replaced by a
lookup into the stage's result table, a scalar subquery that DuckDB runs as a hash join, so every
query shape DuckDB supports keeps working around it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlglot import exp

from quarrydb.engine import outer_joins
from quarrydb.engine.binder import MARKER_META, ModelCall
from quarrydb.engine.call_columns import QUALIFIED_META
from quarrydb.engine.errors import InternalError, NotSupportedError, ProgrammingError
from quarrydb.engine.random_draws import Drawn, draw_once, draws
from quarrydb.engine.sqltree import (
    DIALECT,
    conjuncts,
    from_clause,
    is_constant,
    select_sources,
    to_sql,
    vectors_put_back,
    with_ctes_read,
)
from quarrydb.udfs import Registry

# Names the engine gives stage tables' columns and their aliases in the SQL it writes. They are
# correlated with the query's own columns: a query column of the same name would be read as
# the stage's (`WHERE __q.__qk0 = __qk0` was always true), so they are in the engine's own
# __quarry_ namespace, and a statement with model calls may not use them (is_reserved).
KEY = "__quarry_key{}"
VALUE = "__quarry_value"
LOOKUP_ALIAS = "__quarry_lookup"  # the stage table, in the subquery replacing a call
ENTRIES_ALIAS = "__quarry_entries"  # its rows, where a call reads them as a map
_RESERVED = re.compile(r"^__quarry_(key\d+|value|lookup|entries)$", re.IGNORECASE)
WRITES = (exp.Update, exp.Delete)  # writes whose rows a model call may read


@dataclass
class Stage:
    """One model function over one set of distinct inputs."""

    number: int
    table: str
    call: ModelCall  # a representative: all occurrences share function, model, options
    input_sql: str
    occurrences: int = 1
    # Lookups where DuckDB allows no subquery (a lambda, ON CONFLICT DO UPDATE): their call's
    # input is a constant, so once the stage has run each becomes its one value (put_value).
    inlined: list[exp.Expression] = field(default_factory=list)


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
        """One query of the group's inputs; each in parentheses where there are several (each
        may carry the statement's WITH, which may not follow a UNION bare)."""
        if len(self.inputs) == 1:
            return to_sql(self.inputs[0])
        return " UNION ".join(f"({to_sql(q)})" for q in self.inputs)


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
        refuse_unplannable(tree, calls)
        name_result_columns(tree, calls)
        # Made before any stage runs (see random_draws); what still draws is refused.
        self.drawn: list[Drawn] = draw_once(tree, [c.node for c in calls],
                                            [_scope_of(c) for c in calls], prefix)
        refuse_random_inputs(calls, optimize)
        self.pending: dict[str, list[ModelCall]] = {}
        grouped = _grouped_by(calls)
        for index, call in enumerate(calls):
            identity = call.identity
            if not optimize and (identity, id(_scope_of_call(call))) not in grouped:
                identity = f"{identity}#{index}"
            self.pending.setdefault(identity, []).append(call)
        self.stages: list[Stage] = []

    @property
    def done(self) -> bool:
        return not self.pending

    def ready(self) -> list[Candidate]:
        """Groups whose input queries need no pending call, predicates first."""
        found = self._ready(wait_for_outer_joins=True)
        if not found and self._ready(wait_for_outer_joins=False):
            raise NotSupportedError(
                "the model calls in these outer joins' ON clauses each read a side the other"
                " join may null-extend (a RIGHT or FULL join after another outer join), so"
                " neither can be computed first: compute one of them in a subquery first")
        if not found:
            raise InternalError("could not order the model calls of this statement")
        return sorted(found, key=lambda c: not c.is_predicate)

    def _ready(self, wait_for_outer_joins: bool) -> list[Candidate]:
        found = []
        for identity, group in self.pending.items():
            if wait_for_outer_joins and _waits_for_outer_join(group, self.registry):
                continue
            inputs = [input_query(call, self.optimize) for call in group]
            if not any(_has_model_call(q, self.registry) for q in inputs):
                found.append(Candidate(identity, group, inputs))
        return found

    def commit(self, candidate: Candidate) -> Stage:
        """Make the candidate a stage and replace its calls by lookups into the stage's table."""
        group = self.pending.pop(candidate.identity)
        table = f"{self.prefix}{len(self.stages) + 1}"
        stage = Stage(len(self.stages) + 1, table, group[0], candidate.input_sql, len(group))
        for call in group:
            lookup = _lookup(table, call.keys)
            if _subquery_free_context(call.node) is not None:
                stage.inlined.append(lookup)
            call.node.replace(lookup)
            if isinstance(lookup.parent, exp.Array):  # else printed ARRAY(<lookup>): DuckDB's
                lookup.parent.set("value_constructor", True)  # list of its rows, [] for none
        self.stages.append(stage)
        return stage

    def put_value(self, stage: Stage, value: str | None) -> None:
        """Replace the stage's lookups that DuckDB cannot run as subqueries by its one value
        (`value` as DuckDB prints it; None for NULL), cast to the call's type."""
        target = exp.DataType.build(stage.call.binding.output_type, dialect=DIALECT)
        literal = exp.null() if value is None else exp.Literal.string(value)
        for lookup in stage.inlined:
            lookup.replace(exp.Cast(this=literal.copy(), to=target.copy()))
        stage.inlined = []

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
    """In a WHERE, a HAVING or a join's ON (not in a joined item: `JOIN unnest([call])`)."""
    holder = call.node.find_ancestor(exp.Where, exp.Having, exp.Join)
    if isinstance(holder, exp.Join):
        on = holder.args.get("on")
        return on is not None and any(n is call.node for n in on.walk())
    return holder is not None


def _lookup(table: str, keys: list[exp.Expression]) -> exp.Expression:
    """(SELECT l.value FROM stage AS l WHERE l.key0 = <arg0> AND ...), names prefixed.

    DuckDB allows no window function or unnest in a subquery's WHERE: arguments holding one
    read the stage as a map instead (_map_lookup), the window computed first, as written."""
    if any(k.find(exp.Window, exp.Explode, exp.Unnest) for k in keys):
        return _map_lookup(table, keys)
    condition = exp.and_(
        *[exp.EQ(this=exp.column(KEY.format(i), LOOKUP_ALIAS), expression=k.copy()) for i, k in
          enumerate(keys)]
    )
    query = exp.select(exp.column(VALUE, LOOKUP_ALIAS)).from_(
        exp.to_table(table).as_(LOOKUP_ALIAS))
    return query.where(condition).subquery()


def _map_lookup(table: str, keys: list[exp.Expression]) -> exp.Expression:
    """map_extract_value((SELECT map(list(key), list(value)) FROM (SELECT DISTINCT ...)), <arg>).

    The subquery reads no column of the query (DuckDB computes it once); the arguments are an
    ordinary function argument, where a window may be. Several arguments key by a row value;
    NULL keys are left out (a map has none; a NULL input's result is NULL)."""
    columns = [exp.column(KEY.format(i)) for i in range(len(keys))]
    rows = exp.select(*columns, exp.column(VALUE)).distinct().from_(
        exp.to_table(table).as_(LOOKUP_ALIAS)).where(
        exp.and_(*[exp.Not(this=exp.Is(this=c.copy(), expression=exp.null())) for c in columns]))
    key_of = (lambda items: items[0]) if len(keys) == 1 else (
        lambda items: exp.Tuple(expressions=items))
    entries = exp.Anonymous(this="map", expressions=[
        exp.Anonymous(this="list", expressions=[key_of([c.copy() for c in columns])]),
        exp.Anonymous(this="list", expressions=[exp.column(VALUE)])])
    mapped = exp.select(entries).from_(rows.subquery(ENTRIES_ALIAS)).subquery()
    return exp.Anonymous(this="map_extract_value",
                         expressions=[mapped, key_of([k.copy() for k in keys])])



def is_reserved(name: str) -> bool:
    """Whether a name is one the engine gives the columns and aliases of its stage lookups."""
    return _RESERVED.match(name) is not None

# --- shapes no stage can serve -----------------------------------------------------------------


def refuse_unplannable(tree: exp.Expression, calls: list[ModelCall]) -> None:
    """Refuse, before anything runs, the model calls no stage can serve, saying what to write.

    A call's values are computed when the statement runs, into a stage table that lives as long
    as the statement: a view would read it after. In RETURNING DuckDB allows no subquery. A
    recursive CTE's call reading the recursion's rows would need its own output as input; a
    call in a lambda or ON CONFLICT DO UPDATE is served only by a literal (DuckDB allows no
    subquery there), so only a constant input can be. The lookups' own names cannot be used."""
    if not calls:
        return
    if isinstance(tree, exp.Create) and str(tree.args.get("kind")).upper() == "VIEW":
        raise NotSupportedError("a view cannot call a model: its stages would be gone when the"
                                " view is read (CREATE TABLE ... AS computes the values once)")
    if isinstance(tree, exp.Create) and str(tree.args.get("kind")).upper() in ("MACRO",
                                                                              "FUNCTION"):
        raise NotSupportedError("a macro cannot call a model: its stages would be gone when the"
                                " macro is used (call the model in the query that uses the"
                                " macro, or compute the values once with CREATE TABLE ... AS)")
    reserved = next((i.name for i in tree.find_all(exp.Identifier) if is_reserved(i.name)),
                    None)
    if reserved is not None:
        raise ProgrammingError(f"{reserved!r} is a name the engine gives its own columns, in a"
                               " statement that calls a model (rename it)")
    if any(call.node.find_ancestor(exp.Returning) for call in calls):
        raise NotSupportedError("a model call in RETURNING is not supported: return the"
                                " columns, then call the model in a SELECT")
    for call in calls:
        _refuse_unreadable_place(call)
        recursive = _recursive_cte_read(call)
        if recursive is not None:
            raise NotSupportedError(
                f"a model call in the recursive part of WITH RECURSIVE {recursive} is not"
                f" supported ({written_sql(call.node)} reads the rows the recursion makes): run the"
                " recursion without model calls, then call the model on its rows")
        context = _subquery_free_context(call.node)
        if context is None or all(_is_constant_key(k) for k in call.keys):
            continue
        if isinstance(context, exp.OnConflict):
            raise NotSupportedError(
                f"a model call in ON CONFLICT ... DO UPDATE that reads a column is not supported"
                f" ({written_sql(call.node)}): compute it in the inserted rows, e.g. INSERT INTO t"
                " SELECT id, body, classify(body, L) FROM ... ON CONFLICT (id) DO UPDATE"
                " SET k = excluded.k")
        raise NotSupportedError(
            f"a model call inside a lambda or list comprehension that reads the lambda's"
            f" variable or a column is not supported ({written_sql(call.node)}): unnest the"
            " list and call the model on its elements, e.g. SELECT list(classify(x, L)) FROM"
            " (SELECT unnest(items) AS x), or compute the call in a subquery first")


def refuse_random_inputs(calls: list[ModelCall], optimize: bool) -> None:
    """Refuse a call whose input query would still draw at random once random_draws has drawn
    what it can once: it would draw other rows or values than the final query, whose rows
    would then find no result. Nothing has run yet."""
    for call in calls:
        if not draws(input_query(call, optimize)):
            continue
        shown = written_sql(call.node)
        if any(draws(k) for k in call.keys):
            raise NotSupportedError(
                f"a model call whose input draws at random is not supported ({shown}): the"
                " stage and the query would draw differently; draw the value once in a subquery"
                " in FROM, e.g. SELECT classify(x, L) FROM (SELECT s || random() AS x FROM t)")
        raise NotSupportedError(
            f"the rows {shown} reads are drawn at random (random(), a sample) where the stage"
            " and the query would each draw them, differently (a join's ON, a subquery in an"
            " expression, a GROUP BY query's WHERE): draw the rows once in a subquery in the"
            " outer query's FROM, e.g. FROM (SELECT * FROM t WHERE random() < 0.5) AS t")


def _refuse_unreadable_place(call: ModelCall) -> None:
    """Refuse calls whose inputs no input query can read: COLUMNS(...) in the arguments (it
    would match the stage's own columns, not the table's), a call in PIVOT's ON or USING (no
    SELECT to read its column from), one in a FROM-less LATERAL subquery over the outer row,
    one in a parenthesized join's ON (no input query reads it there)."""
    shown = written_sql(call.node)
    if isinstance(call.node.parent, exp.Table):
        raise ProgrammingError(
            f"{call.binding.function.name}() is a scalar function, not a table ({shown} in"
            f" FROM): select it, e.g. SELECT {shown} AS result")
    if any(c.find_ancestor(exp.Select) is call.node.find_ancestor(exp.Select)
           for k in call.keys for c in k.find_all(exp.Columns)):
        raise NotSupportedError(
            f"COLUMNS(...) inside a model call is not supported ({shown}): name the column,"
            " e.g. classify(q, L), once per column")
    place = call.node.find_ancestor(exp.Select, exp.Pivot)
    if isinstance(place, exp.Pivot):
        raise NotSupportedError(
            f"a model call in PIVOT is not supported ({shown}): pivot a subquery that computes"
            " the call, e.g. PIVOT (SELECT *, classify(q, L) AS topic FROM t) ON topic"
            " USING count(*)")
    if (isinstance(place, exp.Select) and from_clause(place) is None and _is_from_item(place)
            and any(k.find(exp.Column) for k in call.keys)):
        raise NotSupportedError(
            f"a model call in a LATERAL subquery with no FROM is not supported ({shown}): put"
            " the call in the outer select, e.g. SELECT t.*, classify(body, L) AS x FROM t")
    join = call.node.find_ancestor(exp.Join)
    if join is not None and isinstance(join.parent, exp.Table):  # `a JOIN (b JOIN c ON ...)`
        raise NotSupportedError(
            f"a model call in the ON of a parenthesized join is not supported ({shown}): write"
            " the inner join as a subquery, e.g. JOIN (SELECT * FROM b JOIN c ON ...) AS bc"
            " ON ...")
    if isinstance(place, exp.Select) and _reads_own_and_outer_columns(call, place):
        raise NotSupportedError(
            f"a model call that reads columns of both its subquery and the query around it is"
            f" not supported ({shown}): join the tables in one query, or compute the call"
            " over one query's columns")


def _reads_own_and_outer_columns(call: ModelCall, place: exp.Select) -> bool:
    """Whether the call's arguments read a column of its own query's tables and one of a query
    around it (a correlated subquery): no one input query has both."""
    local = {source.alias_or_name.lower() for source in select_sources(place)}
    columns = [c for k in call.keys for c in k.find_all(exp.Column)
               if c.find_ancestor(exp.Select) is place]
    outer = [c for c in columns if c.table and c.table.lower() not in local]
    return bool(local and outer and len(outer) < len(columns))


def _is_from_item(select: exp.Select) -> bool:
    """Whether `select` is a FROM or JOIN item of the query around it (LATERAL or not)."""
    node = select.parent
    while node is not None and not isinstance(node, exp.Select):
        if isinstance(node, (exp.Lateral, exp.From, exp.Join)):
            return True
        node = node.parent
    return False


def _subquery_free_context(node: exp.Expression) -> exp.Expression | None:
    """The lambda, list comprehension body or ON CONFLICT clause around a node: DuckDB binds no
    subquery there, so a call in it cannot be replaced by a lookup."""
    child, parent = node, node.parent
    while parent is not None:
        if isinstance(parent, (exp.Lambda, exp.OnConflict)):
            return parent
        if isinstance(parent, exp.Comprehension) and child.arg_key in ("this", "condition"):
            return parent
        child, parent = parent, parent.parent
    return None


def _is_constant_key(key: exp.Expression) -> bool:
    """No row value: no column, subquery or parameter, nor a bare name (a lambda's variable)."""
    return is_constant(key) and key.find(exp.Identifier) is None


def _recursive_cte_read(call: ModelCall) -> str | None:
    """The name of a recursive CTE holding the call whose rows the call's scope reads."""
    scope = call.node.find_ancestor(exp.Select)
    for cte in _ancestors(call.node, exp.CTE):
        with_ = cte.parent
        if not (isinstance(with_, exp.With) and with_.args.get("recursive")) or scope is None:
            continue
        if not any(a is cte for a in _ancestors(scope, exp.CTE)):
            continue
        defined = {c.alias: c for c in with_.expressions}
        read: set[str] = set()
        frontier: list[exp.Expression] = [scope]
        while frontier:
            for table in frontier.pop().find_all(exp.Table):
                if table.name in defined and table.name not in read and not table.db:
                    read.add(table.name)
                    frontier.append(defined[table.name].this)
        if cte.alias in read:
            return cte.alias
    return None


def _ancestors(node: exp.Expression, kind: type[exp.Expression]) -> list[exp.Expression]:
    found, parent = [], node.parent
    while parent is not None:
        if isinstance(parent, kind):
            found.append(parent)
        parent = parent.parent
    return found


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
    for column in printed.find_all(exp.Column):
        if column.meta.get(QUALIFIED_META):
            column.set("table", None)
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
        _add_select_sources(query, scope, keys, optimize, call.node)
    elif isinstance(scope, WRITES):
        for i, table in enumerate(_sources(scope)):
            if i == 0:
                query = query.from_(table.copy())
            else:
                query = query.join(table.copy(), join_type="cross")
        if optimize:
            _add_safe_predicates(query, _local_predicates(scope), keep_draws=False)
    return with_ctes_read(query, call.node)


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


def _add_select_sources(query: exp.Select, scope: exp.Select, keys: list[exp.Expression],
                        optimize: bool, node: exp.Expression) -> None:
    source = from_clause(scope)
    if source is None:
        return
    item = _from_item_holding(node, scope)
    if item is not None:
        _add_sources_before(query, scope, item, optimize)
        return
    joins = list(scope.args.get("joins") or [])
    tables = _sources(scope)
    # An aggregate or a window over other rows than the query's gives other values: the
    # WHERE is part of such arguments, even for the baseline.
    exact = any(k.find(exp.AggFunc, exp.Window) for k in keys)
    predicates = _local_predicates(scope) if optimize or exact else []
    if not exact:  # a conjunct left out only lets more values in
        predicates = _without_aliases(predicates, scope, _model_aliases(scope))
    in_join = outer_joins.join_holding(node, scope)
    if in_join is not None and not outer_joins.is_plain_inner(in_join):
        preserved = outer_joins.preserved_names(scope, in_join)
        predicates = [p for p in predicates if outer_joins.reads_only(p, preserved)]
    used = _sources_used(keys, tables) if optimize and not exact else None
    if used is not None and not all(isinstance(k, exp.Column) for k in keys):
        # A table read alone has no NULL row where an outer join null-extends it.
        extended = outer_joins.null_extended_names(scope, in_join)
        used = None if any(t.alias_or_name in extended for t in used) else used
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
            on = join.args.get("on")
            relax = on is not None and _contains_call_name(on)
            query.append("joins", outer_joins.relaxed(join) if relax else join.copy())
    _add_safe_predicates(query, predicates, keep_draws=exact)
    if exact:
        group = scope.args.get("group")
        if group is not None and not _contains_call_name(group):
            query.set("group", group.copy())
        having = scope.args.get("having")
        aliases = {e.alias for e in scope.expressions if isinstance(e, exp.Alias)}
        kept = _without_aliases(conjuncts(having.this if having else None), scope, aliases)
        kept = [p.copy() for p in kept if not _contains_call_name(p)]
        if kept:
            query.having(exp.and_(*kept), copy=False)


def _from_item_holding(node: exp.Expression, scope: exp.Select) -> int | None:
    """The position among the scope's FROM items of the one whose expression holds `node` (an
    unnest, VALUES, a table function's arguments: `FROM t, unnest([classify(s, L)])`)."""
    for position, item in enumerate(select_sources(scope)):
        if any(n is node for n in item.walk()):
            return position
    return None


def _add_sources_before(query: exp.Select, scope: exp.Select, position: int,
                        optimize: bool) -> None:
    """A call in a FROM item reads the rows of the items before it, as a lateral item does
    (none: the first item's call is a constant). WHERE conjuncts that read those items alone,
    by qualified names, may filter them."""
    if position == 0:
        return
    query.from_(from_clause(scope).this.copy(), copy=False)
    for join in (scope.args.get("joins") or [])[:position - 1]:
        on = join.args.get("on")
        relax = on is not None and _contains_call_name(on)
        query.append("joins", outer_joins.relaxed(join) if relax else join.copy())
    if optimize:
        names = {t.alias_or_name for t in select_sources(scope)[:position]}
        predicates = [p for p in _local_predicates(scope) if _columns_within(p, names)]
        _add_safe_predicates(query, predicates, keep_draws=False)


def _model_aliases(scope: exp.Select) -> set[str]:
    """Select-list aliases of expressions holding a model call, pending or looked up."""
    return {e.alias for e in scope.expressions if isinstance(e, exp.Alias) and (
        _contains_call_name(e.this) or any(is_lookup(s) for s in e.this.find_all(exp.Select)))}


def _without_aliases(predicates: list[exp.Expression], scope: exp.Select, aliases: set[str]
                     ) -> list[exp.Expression]:
    """The conjuncts that name none of `aliases`: DuckDB resolves a select-list alias in WHERE
    and HAVING, but the input query has no select list to resolve it in. Leaving a HAVING
    conjunct out keeps more groups, each with the same aggregates: the answer is unchanged."""
    def names_alias(predicate: exp.Expression) -> bool:
        return any(not c.table and c.name in aliases and c.find_ancestor(exp.Select) is scope
                   for c in predicate.find_all(exp.Column))

    return [p for p in predicates if not names_alias(p)] if aliases else predicates


def is_lookup(select: exp.Select) -> bool:
    """A call already replaced by its stage's values (see _lookup)."""
    source = from_clause(select)
    return source is not None and source.this.alias == LOOKUP_ALIAS


def _add_safe_predicates(query: exp.Select, predicates: list[exp.Expression],
                         keep_draws: bool) -> None:
    """Keep predicates without pending model calls: they can only shrink the input. One that
    draws at random would draw other rows than the final query: left out, the input is a
    superset (unless `keep_draws`: an aggregate over the rows needs them all, or none)."""
    safe = [p.copy() for p in predicates
            if not _contains_call_name(p) and (keep_draws or not draws(p))]
    if safe:
        query.where(exp.and_(*safe), copy=False)


def _scope_of_call(call: ModelCall) -> exp.Expression | None:
    return call.node.find_ancestor(exp.Select)


def _grouped_by(calls: list[ModelCall]) -> set[tuple[str, int]]:
    """(identity, query) of the calls in a query with a GROUP BY: the baseline, which gives
    each occurrence of a call a stage of its own, must give those one stage per query, or
    DuckDB would not see the select list's call as the one grouped by, however the GROUP BY
    names it (the call, its position, its alias) ('column must appear in the GROUP BY')."""
    return {(call.identity, id(scope)) for call in calls
            if (scope := _scope_of_call(call)) is not None and scope.args.get("group")}


def _waits_for_outer_join(group: list[ModelCall], registry: Registry) -> bool:
    """Whether a call of the group reads a table that an outer join of its query null-extends,
    while that join's ON holds a pending call of another group: until that call is a lookup,
    the ON would be relaxed to TRUE in this group's input query, and a join ON TRUE
    null-extends no row (the inputs would miss `coalesce(b.q, 'none')` where b found no
    match). Waits may go in a circle only where a RIGHT or FULL join's ON reads what an
    earlier outer join's ON may null-extend: ready refuses that."""
    for call in group:
        scope = call.node.find_ancestor(exp.Select)
        if scope is None or all(isinstance(k, exp.Column) for k in call.keys):
            continue  # bare columns: a null-extended row's NULL never reaches a model
        own = outer_joins.join_holding(call.node, scope)
        columns = list(call.node.find_all(exp.Column))
        read = {c.table for c in columns if c.table}
        unknown = any(not c.table for c in columns)  # could be any table's: wait to be safe
        for join in scope.args.get("joins") or []:
            on = join.args.get("on")
            if (join is own or outer_joins.is_plain_inner(join) or on is None
                    or not _has_model_call(on, registry)):
                continue
            if unknown or read & outer_joins.extended_by(scope, join):
                return True
    return False


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
