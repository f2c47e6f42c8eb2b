"""The rows of a table a write touched, and those an index still has to be diffed on.

A diff hashes the rows it looks at (about 1.5 s for all of 1M): knowing which rows may have
changed keeps it to those. A write notes them (NotedWrite); an index not diffed at once keeps
them until its next search (PendingDiff).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Beyond this many touched rows kept for a later diff, they are folded into the diff's tail
# (from the lowest of them on): memory stays bounded, and a diff of so many is slow either way.
TOUCHED_ROWS_KEPT_MAX = 100_000
# Beyond this many UPDATEs / DELETEs left for a later diff, it diffs the whole table, and the
# writes after them no longer read their rows first: at 1M rows reading them costs about 1 ms
# a write, a whole-table diff about 1.5 s once.
WRITES_READ_MAX = 1000


@dataclass
class NotedWrite:
    """What one write may touch: the rows `touched` (UPDATE, DELETE) and every row from
    `start` on (rows it adds come after the last row before it). `start` 0: the rows are not
    known (e.g. the statement's count did not match), so the whole table."""

    names: list[str]  # the indexes on the written table
    start: int
    touched: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    appends_only: bool = False  # a plain INSERT or COPY: deletes nothing
    counted: bool = False  # `touched` is what an UPDATE / DELETE will report as its count

    def deleting_from(self) -> list[str]:
        """The indexes whose rows this write may have deleted (see _forget_if_checkpointed)."""
        return [] if self.appends_only else self.names

    def rows_unknown(self) -> None:
        self.start, self.touched = 0, np.zeros(0, dtype=np.int64)

    def checked_against(self, rowcount: int) -> None:
        """After the write: where DuckDB's count of rows changed is not the number noted, the
        WHERE picked other rows than it did (a volatile function, a value read otherwise)."""
        if self.counted and rowcount != len(self.touched):
            self.rows_unknown()


@dataclass
class PendingDiff:
    """An index to be diffed, at its next use, on every row from `start` on (rows below it are
    known unchanged and unmoved) and on the rows `touched` below it."""

    start: int
    touched: list[np.ndarray] = field(default_factory=list)
    touched_count: int = 0
    counted_writes: int = 0  # UPDATEs / DELETEs whose rows were read before they ran

    def add(self, write: NotedWrite) -> None:
        self.counted_writes += write.counted
        if self.counted_writes > WRITES_READ_MAX:
            self.start = 0
        self.start = min(self.start, write.start)
        if self.start == 0:  # the whole table: no rows to keep
            self.touched, self.touched_count = [], 0
            return
        below = write.touched[write.touched < self.start]
        if len(below):
            self.touched.append(below)
            self.touched_count += len(below)
        if self.touched_count > TOUCHED_ROWS_KEPT_MAX:
            self.fold()

    def fold(self) -> None:
        """The touched rows become part of the tail. Needed after a checkpoint: it moves the
        rows after a deleted one, and the ids noted are from before it."""
        if self.touched:
            self.start = min(self.start, min(int(rows.min()) for rows in self.touched))
        self.touched, self.touched_count = [], 0

    def rows(self) -> np.ndarray:
        """The touched rows below `start`, each once."""
        if not self.touched:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate(self.touched))
