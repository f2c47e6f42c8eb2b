"""Run the model stages of one statement, one at a time, with the rules that need live figures.

Planning a stage at a time lets the runtime rules act: among several ready model predicates the
cheapest per rejected row goes first (predicate_order), and the last predicate of a LIMIT query
stops once enough rows qualify (limit_rule). Each finished stage's table is registered with
DuckDB under its name, for the next stage's input query and for the final SQL.
"""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from quarrydb.engine import limit_rule, predicate_order, proxy_rule, values
from quarrydb.engine.binder import ModelCall
from quarrydb.engine.errors import from_duckdb
from quarrydb.engine.executor import Progress, Settings, StageRun, StageStats
from quarrydb.engine.planner import VALUE, Candidate, Stage, StagePlanner


class StatementRun:
    """The stages of one statement: planned, run (or, for EXPLAIN, only bound), registered."""

    def __init__(self, con: duckdb.DuckDBPyConnection, planner: StagePlanner,
                 settings: Settings, progress: Progress | None,
                 proxy: proxy_rule.ProxyOptions | None = None) -> None:
        self.con = con
        self.proxy = proxy
        self.planner = planner
        self.settings = settings
        self.progress = progress
        self.registered: list[str] = []
        self.made: list[str] = []  # how to drop the temporary tables made for the statement
        self.stats: dict[str, Any] = {"model_inputs": 0, "cache_hits": 0, "stages": []}
        self.warnings: list[str] = []
        self._prefetched: dict[str, tuple[pa.Table, StageStats, float | None]] = {}

    def run_all(self) -> None:
        self._draw(empty=False)
        optimize = self.settings.optimizer
        limit = limit_rule.limit_of(self.planner.tree, self.planner.registry.function_names)
        limit = limit if optimize else None
        while not self.planner.done:
            ready = self.planner.ready()
            predicates = [c for c in ready if c.is_predicate]
            choice = ready[0]
            if optimize and len(predicates) > 1:
                choice = self._cheapest(predicates)
            stage = self.planner.commit(choice)
            stop_early = limit is not None and choice.is_predicate and not any(
                c.is_predicate for c in self.planner.ready_or_waiting())
            self._run(stage, choice, limit if stop_early else None)

    def bind_only(self) -> None:
        """EXPLAIN: plan every stage and register empty tables of the right types."""
        self._draw(empty=True)
        while not self.planner.done:
            stage = self.planner.commit(self.planner.ready()[0])
            try:
                keys = self.con.sql(f"SELECT * FROM ({stage.input_sql}) LIMIT 0").to_arrow_table()
            except duckdb.Error as exc:
                raise from_duckdb(exc) from None
            output = values.to_arrow(stage.call.binding.output_type, [])
            self._register(stage.table, keys.append_column(VALUE, output))
            self.planner.put_value(stage, None)

    def _draw(self, empty: bool) -> None:
        """Make the tables the statement's random draws are made into, once (random_draws)."""
        for drawn in self.planner.drawn:
            try:
                self.con.execute(drawn.create_sql(empty))
            except duckdb.Error as exc:
                raise from_duckdb(exc) from None
            self.made.append(drawn.drop_sql)

    def close(self) -> None:
        for drop in reversed(self.made):
            try:
                self.con.execute(drop)
            except duckdb.Error:
                pass
        self.made = []
        for name in self.registered:
            try:
                self.con.unregister(name)
            except duckdb.Error:
                pass
        self.registered = []

    # --- one stage -----------------------------------------------------------------------------

    def _run(self, stage: Stage, candidate: Candidate, limit: int | None) -> None:
        work = StageRun(stage, self.con, self.settings, self.progress)
        inputs, sample_stats, estimate = self._prefetched.pop(
            candidate.identity, (None, None, None))
        if inputs is None:
            inputs = work.inputs()
        label = proxy_rule.wanted_label(candidate) if self.proxy is not None else None
        proxy_figures: dict[str, Any] = {}
        if label is not None and limit is None and inputs.num_columns == 1:
            table, proxy_figures = self._run_with_proxy(work, stage, inputs, label)
        elif limit is None:
            table = work.run(inputs)
        else:
            table = self._run_until(work, stage, inputs, limit)
        self._register(stage.table, table)
        if stage.inlined:
            self.planner.put_value(stage, self._one_value(stage.table))
        stats = work.stats
        if sample_stats is not None:  # the sample's model calls were real: count them here
            stats.model_inputs += sample_stats.model_inputs
            # ... and were cache hits of the run only where the run still read them (a first
            # predicate may have filtered some out): never fewer than none
            stats.cache_hits = max(stats.cache_hits - sample_stats.model_inputs, 0)
            stats.seconds_model += sample_stats.seconds_model
        figures = stats.as_dict()
        if proxy_figures:
            figures["proxy"] = proxy_figures
            self.stats["model_inputs"] += proxy_figures["embedding_model_inputs"]
        if candidate.is_predicate:
            figures["estimated_selectivity"] = estimate
            figures["actual_selectivity"] = self._selectivity(candidate, stage.table)
        self.stats["model_inputs"] += stats.model_inputs
        self.stats["cache_hits"] += stats.cache_hits
        self.stats["stages"].append(figures)
        self.warnings += work.warnings

    def _run_until(self, work: StageRun, stage: Stage, inputs: pa.Table, limit: int) -> pa.Table:
        """Evaluate growing chunks until `limit` rows pass the WHERE (limit_rule)."""
        parts: list[pa.Table] = []
        start, chunk = 0, max(limit * 2, limit_rule.FIRST_CHUNK)
        check = limit_rule.qualifying_sql(self.planner.tree, limit)
        while True:
            part = inputs.slice(start, chunk)
            start += part.num_rows
            parts.append(work.run(part))
            table = pa.concat_tables(parts)
            self._register(stage.table, table)
            if start >= inputs.num_rows:
                return table
            passing = self._value_of(check)
            if passing >= limit:
                work.stats.stopped_early = True
                return table
            chunk *= 2

    def _run_with_proxy(self, work: StageRun, stage: Stage, inputs: pa.Table, label: str
                        ) -> tuple[pa.Table, dict[str, Any]]:
        """proxy_rule: embeddings + a classifier decide the clear cases, the model the rest."""
        call = stage.call
        registry = self.planner.registry
        embedders = {kind: registry.bind("embed", None, kind) for kind in call.bindings}
        embed_call = ModelCall(call.node, next(iter(embedders.values())), [0], ["input"], {},
                               call.modality, embedders)
        embed_work = StageRun(Stage(stage.number, f"{stage.table}_proxy", embed_call,
                                    stage.input_sql), self.con, self.settings, None)
        vectors_column = embed_work.run(inputs).column(VALUE).to_pylist()
        usable = np.array([v is not None for v in vectors_column])
        dim = next((len(v) for v in vectors_column if v is not None), 1)
        vectors = np.array([v if v is not None else [0.0] * dim for v in vectors_column],
                           dtype=np.float32)

        def classify(rows: np.ndarray) -> list[Any]:
            return work.run(inputs.take(rows)).column(VALUE).to_pylist()

        outputs, figures = proxy_rule.decide(classify, vectors, usable, label, self.proxy.recall)
        figures["embedding_model_inputs"] = embed_work.stats.model_inputs
        table = inputs.append_column(VALUE, pa.array(outputs, type=pa.string()))
        return table, figures

    def _cheapest(self, candidates: list[Candidate]) -> Candidate:
        """Try each predicate on a sample; the best cost / (1 - selectivity) goes first."""
        measured: dict[str, predicate_order.Measurement] = {}
        for candidate in candidates:
            measured[candidate.identity] = self._measure(candidate)
        first = predicate_order.order(measured)[0]
        for identity, (_, stats, estimate) in list(self._prefetched.items()):
            if identity != first:  # its inputs will shrink once the first predicate has run
                self._prefetched[identity] = (None, stats, estimate)
        return next(c for c in candidates if c.identity == first)

    def _measure(self, candidate: Candidate) -> predicate_order.Measurement:
        probe = Stage(0, f"{self.planner.prefix}probe", candidate.calls[0], candidate.input_sql)
        work = StageRun(probe, self.con, self.settings, None)
        inputs = work.inputs()
        sample = work.run(inputs.slice(0, predicate_order.SAMPLE_SIZE))
        self._register(probe.table, sample)
        try:
            selectivity = self._selectivity(candidate, probe.table)
        finally:
            self.con.unregister(probe.table)
            self.registered.remove(probe.table)
        stats = work.stats
        cost = stats.seconds_model / stats.model_inputs if stats.model_inputs else 0.0
        self._prefetched[candidate.identity] = (inputs, stats, selectivity)
        return predicate_order.Measurement(cost, selectivity, sample.num_rows)

    def _selectivity(self, candidate: Candidate, table: str) -> float | None:
        sql = predicate_order.selectivity_sql(candidate, table,
                                              self.planner.registry.function_names)
        if sql is None:
            return None
        value = self._value_of(sql)
        return None if value is None else round(float(value), 4)

    def _one_value(self, table: str) -> str | None:
        """A constant call's stage's value as DuckDB prints it (None: NULL, or no row)."""
        try:
            rows = self.con.sql(f"SELECT CAST({VALUE} AS VARCHAR) FROM {table} LIMIT 1").fetchall()
        except duckdb.Error as exc:
            raise from_duckdb(exc) from None
        return rows[0][0] if rows else None

    def _value_of(self, sql: str) -> Any:
        """The one value a query of the engine's own answers, DuckDB's errors as quarrydb's."""
        try:
            return self.con.sql(sql).fetchall()[0][0]
        except duckdb.Error as exc:
            raise from_duckdb(exc) from None

    def _register(self, name: str, table: pa.Table) -> None:
        self.con.register(name, table)
        if name not in self.registered:
            self.registered.append(name)
