"""A session runs statements for one cursor: the whole flow from SQL text to an Arrow result.

parse (sqlglot) -> bind (model calls) -> plan (stages + final SQL) -> execute (stages, then DuckDB).
Statements with no model call skip all of it and go to DuckDB exactly as written.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import sqlglot
from duckdb.sqltypes import DuckDBPyType
from sqlglot import exp
from sqlglot.errors import ParseError

from quarrydb.engine import (
    index_ddl,
    index_scan,
    many_params,
    proxy_rule,
    statements,
    write_target,
)
from quarrydb.engine.align_spaces import align_similarity_spaces
from quarrydb.engine.binder import bind_call, model_call_nodes
from quarrydb.engine.call_columns import qualify_call_columns
from quarrydb.engine.database import Database
from quarrydb.engine.errors import (
    Error,
    ProgrammingError,
    from_duckdb,
    positioned,
    without_sql_shown,
)
from quarrydb.engine.executor import Progress, Settings
from quarrydb.engine.lateral_aliases import inline_model_aliases
from quarrydb.engine.parameters import Params, bind_parameters
from quarrydb.engine.pending_diffs import NotedWrite
from quarrydb.engine.planner import StagePlanner
from quarrydb.engine.result_types import arrow_loses, lossless_arrow, plain_arrow
from quarrydb.engine.search_sql import KeptSearches, SearchTemplates, literal_vector
from quarrydb.engine.setting_values import with_setting_values
from quarrydb.engine.sqltree import (
    DIALECT,
    from_clause,
    is_volatile,
    put_vectors_back,
    set_vectors_aside,
    to_sql,
    with_clause,
    with_vectors,
)
from quarrydb.engine.statement_run import StatementRun
from quarrydb.engine.table_locations import written_name
from quarrydb.engine.vector_catalog import VectorCatalog
from quarrydb.udfs import Registry, default_registry
from quarrydb.udfs.device import default_device, validate_device

NOTED_WRITE_KINDS = {"INSERT", "UPDATE", "DELETE", "COPY"}  # an index is kept current for
# Statements DuckDB answers with the count of rows written (a CREATE TABLE ... AS among CREATEs).
COUNTED_KINDS = NOTED_WRITE_KINDS | {"CREATE"}
# Statements after which every table name leads where it led before (others may create,
# drop or shadow a table, or change the database or schema in use: see table_locations).
KEEPS_TABLE_NAMES = {"SELECT", "INSERT", "UPDATE", "DELETE", "EXPLAIN", "COPY", "CALL", "PRAGMA"}
READ_KINDS = {"SELECT", "EXPLAIN", "PRAGMA", "SET", "VARIABLE_SET", "TRANSACTION", "UNKNOWN"}
SEARCH_FUNCTIONS = index_scan.SEARCH_FUNCTIONS  # the orderings an index may answer
CURRENT_SETTING = frozenset({"current_setting"})
# What RESET sets quarrydb's own settings to.
SETTING_DEFAULTS = {"device": "auto", "on_media_error": "null", "optimizer": "on",
                    "model_batch_size": "default"}
# DuckDB warns that Arrow from a plain statement costs a copy: wanted for a top-k (_run_duckdb).
warnings.filterwarnings("ignore", message="Arrow output on a DB-API result", category=UserWarning,
                        module=__name__)
# Statements that leave nothing to fetch (DuckDB reports an empty Count for them).
NO_ROW_KINDS = {"CREATE", "DROP", "ALTER", "SET", "VARIABLE_SET", "TRANSACTION", "LOAD",
                "ATTACH", "DETACH", "VACUUM", "CREATE_FUNC", "PREPARE", "EXTENSION"}


@dataclass
class Result:
    """What one statement returned."""

    table: pa.Table | None  # None for statements that return no rows
    rowcount: int = -1
    stats: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # DuckDB's types of the columns, as its description gives them: the DB-API converts rows
    # by them. None: a table the engine made (SHOW MODELS, ...), typed from its Arrow.
    types: list[DuckDBPyType] | None = None
    # The rows in DuckDB's lossless Arrow, where `table` (its default Arrow) loses values: a
    # TIMETZ's offset, a BIT, a UHUGEINT above 2**127 (see result_types). Python rows come
    # from it; `table` stays what DuckDB's own Arrow is.
    exact: pa.Table | None = None


class Session:
    """Runs statements on its own DuckDB connection to the database."""

    def __init__(self, database: Database, registry: Registry | None = None) -> None:
        self.database = database
        self.registry = registry or default_registry()
        self.con = database.new_connection()
        self.settings = Settings(device=default_device())
        self.vectors = VectorCatalog(database, self.con, lambda sql: self._table_of(sql))
        self.progress: Progress | None = None
        self._proxy: proxy_rule.ProxyOptions | None = None  # this statement's, if it has one
        self._search_templates = SearchTemplates(
            lambda tree: bool(model_call_nodes(tree, self.registry)))
        self._kept_searches = KeptSearches(lambda: (
            self.vectors.all(), self.registry.function_names, database.catalog_generation))
        # The writes of the open transaction (None: one no index could follow), see
        # _transaction_ended.
        self._transaction_writes: list[NotedWrite | None] = []

    def close(self) -> None:
        self.con.close()

    def run_calls_ahead(self, sql: str, param_sets: list[Params]) -> None:
        """For executemany: compute the statement's model calls that read parameters alone for
        every parameter set at once (see many_params); each row's statement then finds its
        values cached. A mistake is left for the row whose statement makes it to report."""
        if (len(param_sets) < 2 or not isinstance(sql, str)
                or not statements.mentions_any(sql, self.registry.function_names)):
            return
        try:
            tree = _parsed(sql)
            write_target.check_insert_target(self.con, tree, values_too=True)
            nodes = model_call_nodes(tree, self.registry)
            for statement in many_params.batched_calls_sql(tree, nodes, param_sets):
                self.execute(statement)
        except (Error, ParseError, ValueError, TypeError):
            return

    def execute(self, sql: str, params: Params = None) -> Result:
        if not isinstance(sql, str):
            raise ProgrammingError(f"a statement is a str, not {type(sql).__name__}")
        if not sql.strip():
            raise ProgrammingError("the statement is empty")
        # Long vector literals are set aside first: every later step (splitting, parsing,
        # matching) then reads a short text; DuckDB gets them back (see sqltree.to_sql).
        shortened, token = set_vectors_aside(sql)
        try:
            found = statements.split(shortened)
            if params and len(found) > 1:
                raise ProgrammingError("parameters can be used with one statement at a time")
            result = Result(None)
            for statement in found:
                result = self._execute_one(statement, params)
            return result
        except RecursionError:  # sqlglot's parser on a deeply nested statement
            raise ProgrammingError("the statement is nested too deeply to plan") from None
        finally:
            put_vectors_back(token)

    # --- one statement -------------------------------------------------------------------------

    def _execute_one(self, statement: statements.Statement, params: Params) -> Result:
        outer_proxy = self._proxy  # a statement the engine runs inside another has its own
        try:
            stripped, self._proxy = proxy_rule.take_clause(statement.text)
        except ValueError as exc:
            raise ProgrammingError(str(exc)) from None
        if self._proxy is not None:
            statement = statements.Statement(stripped, statement.kind)
        try:
            with self._one_at_a_time(statement):
                return self._execute_text(statement, params)
        finally:
            self._proxy = outer_proxy
            if statement.kind == "EXPLAIN" and statements.explain_runs_a_write(statement.text):
                self._after_unknown_write()

    def _after_unknown_write(self) -> None:
        """After EXPLAIN ANALYZE of a write or DDL, which runs it: tables may have changed
        rows, or names may lead elsewhere."""
        self.database.names_may_lead_elsewhere()
        self._rows_may_have_changed()

    def _rows_may_have_changed(self) -> None:
        """Each index diffs its whole table at its next use (in a transaction: again after it
        ends, see _transaction_ended)."""
        self.database.forget_syncs()
        if self.vectors.in_transaction:
            self._transaction_writes.append(None)

    def _one_at_a_time(self, statement: statements.Statement
                       ) -> contextlib.AbstractContextManager:
        """Statements that may change tables (and COMMIT), and searches an index may answer,
        run one at a time per database, across the connections threads hold: a search must not
        use an index that a write committed meanwhile has not reached yet (its answer would
        miss rows), nor FAISS change while it searches. Other reads run side by side."""
        if (statement.kind in READ_KINDS and statement.kind != "TRANSACTION"
                and not statements.mentions_any(statement.text, SEARCH_FUNCTIONS)):
            return contextlib.nullcontext()
        return self.database.lock

    def _execute_text(self, statement: statements.Statement, params: Params) -> Result:
        text = statement.text  # long vector literals set aside
        kept = None if params or self.vectors.in_transaction else self._kept_searches.get(text)
        if kept is not None:  # the same search as before, with other vectors
            return self._run_index_search(text, *kept, None, statement.kind)
        assignment = statements.setting(text)
        if assignment and self._apply_setting(*assignment):
            return Result(None)
        if statements.is_show_models(text):
            return Result(self._show_models())
        if statement.kind == "SELECT" and statements.mentions_any(text, CURRENT_SETTING):
            statement = statements.Statement(self._with_setting_values(text), statement.kind)
            text = statement.text
        index_result = self._index_statement(text)
        if index_result is not None:
            return index_result
        self._refuse_unplannable(statement)
        explained = statements.explain(text)
        if explained is not None:
            analyze, body = explained
            work = self._engine_tree(body, params)
            if work is not None:
                return self._explain(*work, analyze)
        # An EXPLAIN with no work for the engine is DuckDB's own (sqlglot would only warn).
        work = None if explained is not None else self._engine_tree(text, params)
        noted = None
        try:
            if work is None:  # DuckDB runs exactly what the user wrote
                if statement.kind == "ALTER" and self.vectors.all():
                    return self._run_alter(statement, params)
                noted = self._note_write(statement, params)
                result = self._run_statement(statement, params)
                if noted is not None:
                    noted.checked_against(result.rowcount)
                # With parameters: one of many, as executemany sends them. In a transaction:
                # it may yet be rolled back, and an index can be changed only in its own.
                # Rows not known: a diff of the whole table, left to the next search.
                if noted is not None and (params or self.vectors.in_transaction
                                          or noted.start == 0):
                    self.vectors.after_write_later(noted)
                    if self.vectors.in_transaction:
                        self._transaction_writes.append(noted)
                elif noted is not None:
                    self.vectors.after_write(noted)
                return result
            tree, query = work
            if query is not None:
                if not params:
                    self._kept_searches.keep(text, tree, query)
                return self._run_index_search(text, tree, query, params, statement.kind)
            if not model_call_nodes(tree, self.registry):
                return self._run_duckdb(to_sql(tree), None, statement.kind)
            return self._run_with_models(tree, statement.kind)
        finally:
            imports = statements.imports_tables(statement)
            if statement.kind not in KEEPS_TABLE_NAMES or imports:  # CREATE, USE, SET schema
                self.database.names_may_lead_elsewhere()
            if statements.checkpoints(statement):
                self.database.checkpoint_ran()
            if ((statement.kind not in READ_KINDS or imports) and noted is None
                    and not statements.changes_no_rows(statement)):  # tables may have changed
                self._rows_may_have_changed()
                if not self.vectors.in_transaction:  # else when it ends: _transaction_ended
                    if statement.kind == "DROP":
                        self.vectors.drop_orphans()
                    elif statement.kind == "CREATE":
                        self.vectors.drop_replaced()

    def _refuse_unplannable(self, statement: statements.Statement) -> None:
        """PREPARE and EXPLAIN's options of a statement with a model call, refused with what to
        write instead: the engine plans model calls before DuckDB sees a statement, so DuckDB
        would say there is no such function (or sqlglot would fail on the options)."""
        if statement.kind not in ("PREPARE", "EXPLAIN") or not statements.mentions_any(
                statement.text, self.registry.function_names):
            return
        if statement.kind == "PREPARE":
            raise ProgrammingError(
                "PREPARE cannot hold a model call: the engine plans model calls before DuckDB"
                " sees a statement (run it with cursor.execute(sql, parameters) instead;"
                " repeated, its plan is kept)")
        if statements.explain_has_options(statement.text):
            raise ProgrammingError(
                "EXPLAIN (options) of a statement with a model call is not supported: EXPLAIN"
                " and EXPLAIN ANALYZE show its model stages and DuckDB's plan")

    def _engine_tree(self, text: str, params: Params
                     ) -> tuple[exp.Expression, index_scan.IndexQuery | None] | None:
        """The parsed statement and the vector index query in it, if the engine has work in it
        (a model call, or a similarity search an index may answer); else None, and DuckDB runs
        the text as written."""
        calls_models = statements.mentions_any(text, self.registry.function_names)
        searches = (statements.mentions_any(text, SEARCH_FUNCTIONS) and self.vectors.all()
                    and not self.vectors.in_transaction)  # see _run_statement
        if not (calls_models or searches):
            return None
        try:
            tree = _parsed(text)
        except ParseError as exc:
            if not calls_models:
                return None  # DuckDB's own syntax sqlglot does not know: DuckDB's turn
            raise self._malformed(text, exc) from None
        names = self.registry.function_names
        query = index_scan.match(tree, self.vectors, names) if searches else None
        has_model_calls = bool(model_call_nodes(tree, self.registry))
        if query is None and not has_model_calls and not (params and searches):
            return None
        try:
            tree = bind_parameters(tree, params)
        except ProgrammingError:
            if has_model_calls:
                raise
            return None  # a value SQL cannot write out: DuckDB binds it, without the index
        if params and searches:  # the values may make a probe constant: `similarity(v, ?)`
            query = index_scan.match(tree, self.vectors, names)
            if query is None and not has_model_calls:
                return None  # DuckDB runs the statement as written, with its parameters
        return tree, query

    # --- vector indexes ------------------------------------------------------------------------

    def _index_statement(self, text: str) -> Result | None:
        try:
            statement = index_ddl.parse(text)
        except ValueError as exc:
            raise ProgrammingError(str(exc)) from None
        if isinstance(statement, index_ddl.ShowIndexes):
            return Result(self.vectors.show())
        if isinstance(statement, index_ddl.CreateIndex):
            self.vectors.create(statement)
            return Result(None)
        if isinstance(statement, index_ddl.DropIndex):
            if self.vectors.drop(statement.name, statement.if_exists):
                return Result(None)
        return None

    def _run_alter(self, statement: statements.Statement, params: Params) -> Result:
        """An ALTER TABLE that would leave an index unable to read its input (its table
        renamed; a column it reads dropped, renamed or retyped; a column named rowid added) is
        refused, as DuckDB refuses these for its own indexes: it runs in a transaction of its
        own, rolled back if so. Inside the user's transaction it cannot be undone alone: the
        error says to roll back."""
        before = self.vectors.index_inputs()
        own = not self.vectors.in_transaction
        if own:
            self.con.execute("BEGIN TRANSACTION")
        try:
            result = self._run_statement(statement, params)
            after = self.vectors.index_inputs()
            broken = [name for name, kind in before.items()
                      if kind is not None and after.get(name) != kind]
            if broken:
                undo = "" if own else "ROLLBACK, then "
                raise ProgrammingError(
                    f"this ALTER would leave vector index {broken[0]} unable to read its input"
                    f" ({undo}DROP INDEX {broken[0]} first)")
        except BaseException:
            if own:
                self.con.execute("ROLLBACK")
            raise
        if own:
            self.con.execute("COMMIT")
        return result

    def _note_write(self, statement: statements.Statement, params: Params
                    ) -> NotedWrite | None:
        """For an INSERT / UPDATE / DELETE or a COPY ... FROM on an indexed table: what it may
        touch, so the index is updated for those rows only. None: the next search diffs the
        whole table."""
        if statement.kind not in NOTED_WRITE_KINDS or not self.vectors.all():
            return None
        try:
            tree = _parsed(statement.text)
        except ParseError:
            return None
        target = tree.find(exp.Table)
        if target is None or tree.args.get("from") or tree.args.get("from_") or tree.args.get(
                "using") or tree.args.get("returning"):
            return None
        table = written_name(target)  # quoted: `"my items"`
        if isinstance(tree, exp.Copy) and tree.args.get("kind") is not True:
            return None  # COPY ... TO: no row changes
        if not isinstance(tree, (exp.Update, exp.Delete, exp.Copy, exp.Insert)):
            return None
        appends_only = isinstance(tree, exp.Copy) or (isinstance(tree, exp.Insert) and not (
            tree.args.get("conflict") or tree.args.get("alternative")))
        if not self.vectors.indexes_on(table):  # nothing to keep current
            return NotedWrite([], 0, appends_only=appends_only)
        rows_sql, rows_known = None, True
        if isinstance(tree, (exp.Update, exp.Delete)):
            # Not worth reading where the next search diffs every row anyway.
            where = None if self.vectors.diffs_whole(table) else self._write_condition(
                tree, params)
            rows_known = where is not None
            rows_sql = f"SELECT rowid FROM {table} WHERE {where}" if rows_known else None
        elif not appends_only:  # an upsert: DuckDB deletes the row it replaces, wherever it is
            rows_known = False
        try:
            noted = self.vectors.before_write(table, rows_sql, appends_only)
        except duckdb.Error:
            return None
        if not rows_known:
            noted.rows_unknown()
        return noted

    @staticmethod
    def _write_condition(tree: exp.Update | exp.Delete, params: Params) -> str | None:
        """The WHERE of an UPDATE / DELETE, with its parameters' values, to select the rows it
        will touch; None where that selection may pick other rows than the write will (a
        value SQL cannot write out, a function that answers otherwise when run again)."""
        where = tree.args.get("where")
        if where is None:
            return "TRUE"
        if params:
            try:  # the WHERE's values alone: those of SET may be long vectors
                copy = tree.copy()
                where = bind_parameters(copy, params, within=copy.args["where"]).args["where"]
            except ProgrammingError:
                return None
        return None if is_volatile(where) else to_sql(where.this)

    def _run_statement(self, statement: statements.Statement, params: Params) -> Result:
        """DuckDB runs the statement as written. Inside a transaction (BEGIN ... COMMIT) the
        indexes are not used: they hold what is committed, which is not what the transaction
        sees (its own writes, and not what others committed since it began)."""
        opens = statements.opens_or_ends_transaction(statement)
        try:
            result = self._run_duckdb(with_vectors(statement.text), params, statement.kind,
                                      as_written=True)
        finally:
            if opens is False:  # COMMIT / ROLLBACK: ended, even where it fails
                self._transaction_ended()
        if opens:
            self.vectors.in_transaction = True
        return result

    def end_transaction(self, command: str) -> None:
        """COMMIT or ROLLBACK from the DB-API connection."""
        with self.database.lock:
            try:
                self.con.execute(command)
            finally:
                self.database.names_may_lead_elsewhere()  # a ROLLBACK may undo a CREATE
                self._transaction_ended()

    def _transaction_ended(self) -> None:
        """A search on another cursor may have diffed an index during the transaction, not
        seeing its writes: now committed, they are left to the next search again."""
        self.vectors.in_transaction = False
        writes, self._transaction_writes = self._transaction_writes, []
        if None in writes:
            self.database.forget_syncs()
            self.vectors.drop_orphans()  # a DROP TABLE committed (or rolled back: a no-op)
            self.vectors.drop_replaced()  # ... or a CREATE OR REPLACE TABLE
        for noted in writes:
            if noted is not None:
                self.vectors.after_write_later(noted)

    def _use_index(self, tree: exp.Expression, query: index_scan.IndexQuery | None
                   ) -> tuple[exp.Expression, str | None]:
        """The tree restricted to a vector index's candidates, and how (None: no index used)."""
        if query is None:
            return tree, None
        rows = index_scan.candidates(query, self.vectors, self._probe_vector(query))
        if rows is not None:
            index_scan.restrict(tree, index_scan.listed(rows))
        return tree, query.describe()

    def _run_index_search(self, text: str, tree: exp.Expression, query: index_scan.IndexQuery,
                          params: Params, kind: str) -> Result:
        """A search an index answers: its candidate rows, then DuckDB on them (or the planner,
        where the statement calls models). `tree` is left unchanged: it may be a kept one."""
        rows = index_scan.candidates(query, self.vectors, self._probe_vector(query))
        if rows is not None:
            sql = None if params else self._search_templates.sql(text, tree, query, rows)
            if sql is not None:
                return self._run_duckdb(sql, None, kind, top_k=True, ranked=rows)
            tree = index_scan.restrict(tree.copy(), index_scan.listed(rows))
        if model_call_nodes(tree, self.registry):
            return self._run_with_models(tree.copy(), kind)
        return self._run_duckdb(to_sql(tree), None, kind, top_k=True)

    def _probe_vector(self, query: index_scan.IndexQuery) -> np.ndarray:
        """The constant side of the search, read from the text or computed by the engine."""
        vector = literal_vector(query.probe)
        if vector is None:  # an expression, e.g. embed('a query'): the engine computes it
            probe = to_sql(query.probe)
            if query.info.options.metric != "ip":  # as similarity() and distance() cast it
                probe = f"CAST(({probe}) AS FLOAT[])"
            try:
                table = self.execute(f"SELECT {probe}").table
            except Error as exc:  # DuckDB's words, less the engine's SQL they quote
                raise type(exc)(without_sql_shown(str(exc))) from None
            assert table is not None
            try:
                vector = np.asarray(table.column(0)[0].as_py(), dtype=np.float32)
            except (TypeError, ValueError):  # a NULL in it, a text: DuckDB's answer (its error)
                vector = np.full(1, np.nan, dtype=np.float32)
        return vector

    def _run_duckdb(self, text: str, params: Params, kind: str, top_k: bool = False,
                    ranked: list[int] | None = None, as_written: bool = False) -> Result:
        """DuckDB's answer as Arrow. `top_k`: a LIMIT k search, a few rows, fetched the
        cheapest way there is (see _top_k_arrow); `ranked`: its candidate rows, in the order
        the answer takes (see index_scan.in_candidate_order); `as_written`: `text` is the
        user's statement, whose errors keep DuckDB's position in it."""
        exact = None
        try:
            if top_k:
                table, types = _top_k_arrow(self.con, text)
                if kind in READ_KINDS and arrow_loses(types):  # rare: read it again, lossless
                    exact = lossless_arrow(self.con, lambda: _top_k_arrow(self.con, text)[0])
                    table = plain_arrow(self.con, exact)
                if ranked is not None:
                    table, types = index_scan.in_candidate_order(table, ranked), types[:-1]
                    if exact is not None:
                        exact = index_scan.in_candidate_order(exact, ranked)
            else:
                try:
                    relation = self.con.sql(text, params=params if params else None)
                except duckdb.Error as exc:  # the user's own SQL: DuckDB's LINE 1: ... ^ too
                    raise (positioned(self.con, text, kind, params, exc) if as_written
                           else from_duckdb(exc)) from None
                if relation is None:
                    return Result(None)
                types = relation.types
                if arrow_loses(types):
                    exact = lossless_arrow(self.con, relation.to_arrow_table)
                    table = plain_arrow(self.con, exact)
                else:
                    table = relation.to_arrow_table()
        except duckdb.Error as exc:
            raise from_duckdb(exc) from None
        counted = table is not None and _is_count(table) and not statements.returns_rows(text)
        if counted and kind in COUNTED_KINDS:  # DuckDB's count of the rows written
            return Result(table, int(table.column(0)[0].as_py()), types=types)
        if table is None or table.num_columns == 0 or kind in NO_ROW_KINDS:
            return Result(None)
        rowcount = table.num_rows
        return Result(table, rowcount, types=types, exact=exact)

    # --- statements with model calls -----------------------------------------------------------

    def _table_of(self, sql: str) -> pa.Table:
        table = self.execute(sql).table
        return table if table is not None else pa.table({})

    def _planner(self, tree: exp.Expression) -> StagePlanner:
        inline_model_aliases(tree, lambda node: bool(model_call_nodes(node, self.registry)),
                             self._source_columns)
        qualify_call_columns(tree, model_call_nodes(tree, self.registry), self._source_columns)
        calls = [bind_call(n, self.registry, self._constant, self._column_comment) for n in
                 model_call_nodes(tree, self.registry)]
        align_similarity_spaces(tree, calls, self.registry)
        prefix = f"__quarry_stage_{uuid.uuid4().hex[:8]}_"
        return StagePlanner(tree, calls, self.registry, prefix, self.settings.optimizer)

    def _run_with_models(self, tree: exp.Expression, kind: str) -> Result:
        try:  # the target's checks, before any model runs
            if self.database.read_only and write_target.writes_database(self.con, tree):
                raise ProgrammingError(f"cannot run {kind}: the database is open read-only"
                                       " (its model calls were not run)")
            if not write_target.create_needs_running(self.con, tree):
                return Result(None)
            write_target.check_insert_target(self.con, tree)
        except duckdb.Error as exc:  # e.g. a transaction aborted before: DuckDB's words
            raise from_duckdb(exc) from None
        run = StatementRun(self.con, self._planner(tree), self.settings, self.progress,
                           self._proxy)
        try:
            run.run_all()
            try:
                result = self._run_duckdb(run.planner.final_sql, None, kind)
            except Error as exc:  # DuckDB's message, without the engine's rewritten SQL
                raise type(exc)(without_sql_shown(str(exc))) from None
        finally:
            run.close()
        result.stats = run.stats
        result.warnings = run.warnings
        return result

    def _explain(self, tree: exp.Expression, query: index_scan.IndexQuery | None,
                 analyze: bool) -> Result:
        """The index used, the model stages (with their figures, for ANALYZE), then DuckDB's
        own plan."""
        tree, index_used = self._use_index(tree, query)
        run = StatementRun(self.con, self._planner(tree), self.settings, self.progress)
        try:
            run.run_all() if analyze else run.bind_only()
            prefix = "EXPLAIN ANALYZE " if analyze else "EXPLAIN "
            duck = self._run_duckdb(prefix + run.planner.final_sql, None, "EXPLAIN").table
        finally:
            run.close()
        assert duck is not None
        stages = run.planner.stages
        keys = [f"model stage {s.number}" for s in stages]
        texts = [_describe_stage(s, self.settings) for s in stages]
        for i, figures in enumerate(run.stats["stages"]):
            texts[i] += "\n" + ", ".join(f"{k}={v}" for k, v in figures.items())
        if index_used is not None:
            keys, texts = ["index scan", *keys], [index_used, *texts]
        rows = {
            "explain_key": keys + duck.column(0).to_pylist(),
            "explain_value": texts + duck.column(1).to_pylist(),
        }
        return Result(pa.table(rows), stats=run.stats, warnings=run.warnings)

    def _constant(self, node: exp.Expression) -> Any:
        try:
            rows = self.con.sql(f"SELECT {to_sql(node)}").fetchall()
        except duckdb.Error as exc:
            raise from_duckdb(exc) from None
        return rows[0][0] if rows else None

    def _source_columns(self, select: exp.Select) -> set[str] | None:
        """The columns a SELECT's FROM clause and joins give, as DuckDB binds them (with the
        statement's CTEs); None where DuckDB cannot say on its own (a model call, a column of
        an outer query)."""
        source = from_clause(select)
        if source is None:
            return set()
        probe = exp.select("*").from_(source.this.copy())
        for join in select.args.get("joins") or []:
            probe.append("joins", join.copy())
        with_ = with_clause(select.root())
        ctes = f"{to_sql(with_)} " if with_ is not None else ""
        try:
            names = self.con.sql(f"{ctes}{to_sql(probe)} LIMIT 0").columns
        except (duckdb.Error, ParseError):
            return None
        return {name.lower() for name in names}

    def _column_comment(self, schema: str | None, table: str, column: str | int
                        ) -> str | None:
        """A column's comment, where media columns are declared ('media', 'media:image');
        the column by name, or by position (from 0) where an alias list renamed it."""
        which = "column_index = ? + 1" if isinstance(column, int) else \
            "lower(column_name) = lower(?)"
        sql = ("SELECT comment FROM duckdb_columns() WHERE lower(table_name) = lower(?)"
               f" AND {which} AND (? IS NULL OR schema_name = ?)")
        try:
            rows = self.con.execute(sql, [table, column, schema, schema]).fetchall()
        except duckdb.Error:
            return None
        return rows[0][0] if rows else None

    # --- quarrydb's own commands ---------------------------------------------------------------

    def _apply_setting(self, name: str, value: str | None) -> bool:
        """Handle quarrydb's settings (value None: RESET to the default); return False for
        DuckDB's own (DuckDB runs those)."""
        if value is None:
            if name not in SETTING_DEFAULTS:
                return False
            value = SETTING_DEFAULTS[name]
        if name == "device":
            try:
                self.settings.device = validate_device(value)
            except ValueError as exc:
                raise ProgrammingError(str(exc)) from None
            return True
        if name == "on_media_error":
            if value.lower() not in ("null", "raise"):
                raise ProgrammingError(f"on_media_error is 'null' or 'raise', got {value!r}")
            self.settings.on_media_error = value.lower()
            return True
        if name == "optimizer":
            if value.lower() not in ("on", "off", "true", "false"):
                raise ProgrammingError(f"optimizer is 'on' or 'off', got {value!r}")
            self.settings.optimizer = value.lower() in ("on", "true")
            return True
        if name == "model_batch_size":
            try:
                size = int(value)
            except ValueError:
                size = 0
            if size <= 0 and value.lower() not in ("default", "auto"):
                raise ProgrammingError(f"model_batch_size must be a positive integer, got {value}")
            self.settings.batch_size = size if size > 0 else None
            return True
        return False

    def _malformed(self, text: str, exc: ParseError) -> ProgrammingError:
        """A statement with model calls sqlglot cannot parse: DuckDB's own parser error where it
        cannot either (it points into the user's SQL); else sqlglot's reason, in words,
        without its terminal highlighting."""
        try:
            self.con.extract_statements(text)
        except duckdb.Error as duck:
            return ProgrammingError(f"malformed SQL: {duck}")
        first = exc.errors[0] if exc.errors else {}
        where = f", line {first['line']}, column {first['col']}" if "line" in first else ""
        return ProgrammingError(
            "this statement is DuckDB SQL that the planner's parser (sqlglot) cannot read, so"
            f" its model calls cannot be planned ({first.get('description', 'unparsed')}{where})")

    def _with_setting_values(self, text: str) -> str:
        """The statement with `current_setting('<a quarrydb setting>')` as its value."""
        try:
            tree = _parsed(text)
        except ParseError:
            return text  # DuckDB's to parse, and to explain
        values = {
            "device": self.settings.device,
            "on_media_error": self.settings.on_media_error,
            "optimizer": "on" if self.settings.optimizer else "off",
            "model_batch_size": str(self.settings.batch_size or "default"),
        }
        return to_sql(tree) if with_setting_values(tree, values) else text

    def _show_models(self) -> pa.Table:
        rows = []
        for model in self.registry.models():
            rows.append(
                {
                    "name": model.name,
                    "functions": ", ".join(self.registry.implementations_of(model.name)),
                    "modality": model.modality,
                    "source": model.source,
                    "available": bool(model.is_available()),
                    "device": self.settings.device,
                    "revision": model.revision,
                    "description": model.description,
                }
            )
        return pa.Table.from_pylist(rows)


def _describe_stage(stage: Any, settings: Settings) -> str:
    call = stage.call
    model = call.binding.model
    batch = settings.batch_size or model.batch_size
    about = (f"model {model.name}, {model.source}, revision {model.revision}"
             if call.model_names == model.name else f"models by kind: {call.model_names}")
    lines = [
        f"{call.binding.function.name} ({about}) -> {call.binding.output_type}",
        f"batch size {batch} on {settings.device}; serves {stage.occurrences} call(s): {call.text}",
        f"input: {stage.input_sql}",
    ]
    if call.options:
        lines.insert(1, f"options: {call.options}")
    return "\n".join(lines)


TOP_K_BATCH = 2048  # rows per Arrow batch of a top-k's answer (a few rows, k of them)


def _is_count(table: pa.Table) -> bool:
    """Whether a write's answer is DuckDB's count of rows written (one BIGINT named Count)."""
    return (table.num_rows == 1 and table.column_names == ["Count"]
            and pa.types.is_int64(table.schema.field(0).type))


def _top_k_arrow(con: duckdb.DuckDBPyConnection, text: str
                 ) -> tuple[pa.Table, list[DuckDBPyType]]:
    """A small answer as Arrow, and DuckDB's types of its columns, at the cost of one
    statement. DuckDB 2's public ways cost more on a 1M-row search: the relation API binds the
    statement twice (+0.45 ms), a DB-API result's Arrow runs a second statement over the rows
    (+0.43 ms). Its connection's own submit, which the relation API calls, does neither; where
    a DuckDB lacks it, the DB-API way answers the same."""
    submit = getattr(con, "_submit", None)
    answer = con.execute(text) if submit is None else submit(text, None, "arrow", TOP_K_BATCH)
    types = [column[1] for column in answer.description]
    return (answer.to_arrow_table() if submit is None else answer.arrow_table()), types


def _parsed(text: str) -> exp.Expression:
    """sqlglot's tree of a statement, for the engine to rewrite in place. Short statements'
    trees are kept: with vector literals set aside a search repeated with other vectors has the
    same text, and a copy costs a fifth of a parse."""
    if len(text) > statements.CACHED_TEXT_MAX:
        return sqlglot.parse_one(text, dialect=DIALECT)
    return _kept_parse(text).copy()


@functools.lru_cache(maxsize=statements.CACHED_STATEMENTS)
def _kept_parse(text: str) -> exp.Expression:
    return sqlglot.parse_one(text, dialect=DIALECT)


__all__ = ["Error", "Result", "Session"]
