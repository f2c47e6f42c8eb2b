"""Random sequences of writes, checkpoints and searches on an indexed table: after each step,
a search answers exactly as brute force over the rows DuckDB holds at that moment.

Each way of keeping an index current has its own test elsewhere; these sequences mix them
(tracked writes, writes with parameters, checkpoints at a write to this table or another,
explicit CHECKPOINTs, writes by plain DuckDB while quarrydb is closed, writes in a
transaction that commits or rolls back, writes through another connection). A bug between
two of them was found this way; it has its own test now
(test_a_delete_before_a_noticed_checkpoint_is_diffed_is_seen). The table spans more than one
DuckDB row group, so checkpoints do move rows.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

import quarrydb

ROWS, DIM, K, STEPS = 250_000, 8, 10, 20


def vector_sql(vector: np.ndarray) -> str:
    return "[" + ", ".join(f"{x:.7f}" for x in vector) + f"]::FLOAT[{DIM}]"


class Sequence:
    """The table, the next id to insert, and the steps a sequence draws from."""

    def __init__(self, path: Path, rng: np.random.Generator) -> None:
        self.path, self.rng, self.next_id = path, rng, 0
        self.filter_rng = np.random.default_rng(rng.integers(0, 2**32))  # its own stream
        self.con = quarrydb.connect(path)
        self.cur = self.con.cursor()

    def new_rows(self, count: int) -> pa.Table:
        vectors = self.rng.standard_normal((count, DIM)).astype(np.float32)
        ids = np.arange(self.next_id, self.next_id + count)
        self.next_id += count
        return pa.table({"id": ids, "v": pa.FixedSizeListArray.from_arrays(
            pa.array(vectors.reshape(-1)), DIM)})

    def insert(self) -> None:
        self.cur.register("fresh", self.new_rows(int(self.rng.integers(1, 2000))))
        self.cur.execute(f"INSERT INTO items SELECT id, v::FLOAT[{DIM}] FROM fresh")

    def insert_with_parameters(self) -> None:
        row = self.new_rows(1).to_pylist()[0]
        self.cur.execute(f"INSERT INTO items VALUES (?, ?::FLOAT[{DIM}])", [row["id"], row["v"]])

    def delete_with_parameters(self) -> None:
        low = int(self.rng.integers(0, self.next_id))
        self.cur.executemany("DELETE FROM items WHERE id = ?", [[low], [low + 7]])

    def update_with_parameters(self) -> None:
        row = int(self.rng.integers(0, self.next_id))
        vector = self.rng.standard_normal(DIM).astype(np.float32).tolist()
        self.cur.execute("UPDATE items SET v = ? WHERE id = ?", [vector, row])

    def transaction(self) -> None:
        """Writes between BEGIN and a COMMIT or ROLLBACK, with a search in between."""
        self.cur.execute("BEGIN")
        self.insert()
        self.delete_with_parameters()
        self.check_search()
        self.cur.execute("COMMIT" if self.rng.integers(0, 2) else "ROLLBACK")

    def delete(self) -> None:
        low = int(self.rng.integers(0, self.next_id))
        self.cur.execute(f"DELETE FROM items WHERE id BETWEEN {low} AND"
                         f" {low + int(self.rng.integers(0, 20_000))}")

    def update(self) -> None:
        low = int(self.rng.integers(0, self.next_id))
        self.cur.execute(f"UPDATE items SET v = list_transform(v, lambda x: -x)::FLOAT[{DIM}]"
                         f" WHERE id BETWEEN {low} AND {low + int(self.rng.integers(0, 500))}")

    def write_through_another_connection(self) -> None:
        """Another connection of this process (a thread's, say) writes: it shares the index."""
        with quarrydb.connect(self.path) as other:
            cur = other.cursor()
            row = self.new_rows(1).to_pylist()[0]
            cur.execute(f"INSERT INTO items VALUES (?, ?::FLOAT[{DIM}])", [row["id"], row["v"]])
            low = int(self.rng.integers(0, self.next_id))
            cur.execute(f"DELETE FROM items WHERE id BETWEEN {low} AND {low + 50}")

    def checkpoint(self) -> None:
        self.cur.execute("CHECKPOINT")

    def write_elsewhere_checkpointing(self) -> None:
        self.cur.execute("SET checkpoint_threshold = '1KB'")
        self.cur.execute("INSERT INTO notes VALUES ('its commit checkpoints the database')")
        self.cur.execute("RESET checkpoint_threshold")

    def delete_checkpointing(self) -> None:
        self.cur.execute("SET checkpoint_threshold = '1KB'")
        self.delete()
        self.cur.execute("RESET checkpoint_threshold")

    def write_with_plain_duckdb(self) -> None:
        """Another tool writes the file while quarrydb has it closed."""
        self.con.close()
        plain = duckdb.connect(str(self.path / "quarry.duckdb"))
        plain.register("fresh", self.new_rows(int(self.rng.integers(1, 500))))
        plain.execute(f"INSERT INTO items SELECT id, v::FLOAT[{DIM}] FROM fresh")
        low = int(self.rng.integers(0, self.next_id))
        plain.execute(f"DELETE FROM items WHERE id BETWEEN {low} AND {low + 300}")
        plain.close()
        self.con = quarrydb.connect(self.path)
        self.cur = self.con.cursor()

    def check_search(self) -> None:
        """One search, unfiltered or with a filter that keeps 0.5% to 50% of the rows (each
        picks its own strategy), against brute force over the rows as DuckDB has them."""
        share = FILTER_SHARES[int(self.filter_rng.integers(0, len(FILTER_SHARES)))]
        where = "" if share is None else f"WHERE id % 1000 < {int(share * 1000)}"
        table = self.cur.execute(f"SELECT id, v FROM items {where}").fetch_arrow_table()
        ids = table.column("id").to_numpy()
        vectors = table.column("v").combine_chunks().flatten().to_numpy().reshape(-1, DIM)
        probe = vectors[int(self.rng.integers(0, len(ids)))] + 0.05
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        expected = ids[np.argsort(-(unit @ (probe / np.linalg.norm(probe))), kind="stable")[:K]]
        self.cur.execute(f"SELECT id FROM items {where} ORDER BY similarity(v,"
                         f" {vector_sql(probe)}) DESC LIMIT {K}")
        assert [r[0] for r in self.cur.fetchall()] == expected.tolist(), where


FILTER_SHARES = [None, None, 0.005, 0.05, 0.5]
STEP_NAMES = ["insert", "insert_with_parameters", "delete", "update", "checkpoint",
              "write_elsewhere_checkpointing", "delete_checkpointing", "write_with_plain_duckdb",
              "delete_with_parameters", "update_with_parameters", "transaction",
              "write_through_another_connection"]


@pytest.mark.parametrize("seed", [3, 9, 11])
def test_random_sequences_of_writes_and_checkpoints_leave_exact_answers(tmp_path, seed):
    rng = np.random.default_rng(seed)
    sequence = Sequence(tmp_path / "sequence.quarry", rng)
    try:
        cur = sequence.cur
        cur.register("start", sequence.new_rows(ROWS))
        cur.execute(f"CREATE TABLE items AS SELECT id, v::FLOAT[{DIM}] AS v FROM start")
        cur.execute("CREATE TABLE notes (body VARCHAR)")
        cur.execute("CHECKPOINT")
        cur.execute("CREATE INDEX item_vec ON items USING faiss (v) WITH (kind = 'flat')")
        done = []
        for _ in range(STEPS):
            for _ in range(int(rng.integers(1, 7))):  # a few writes between two searches
                name = STEP_NAMES[int(rng.integers(0, len(STEP_NAMES)))]
                getattr(sequence, name)()
                done.append(name)
            try:
                sequence.check_search()
            except AssertionError as exc:
                raise AssertionError(f"after {done}") from exc
    finally:
        sequence.con.close()
