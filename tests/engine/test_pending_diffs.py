"""What an index is left to diff at its next search, as writes and checkpoints come."""

from __future__ import annotations

import numpy as np

from quarrydb.engine import pending_diffs
from quarrydb.engine.pending_diffs import NotedWrite, PendingDiff


def write(start: int, touched: list[int], counted: bool = True) -> NotedWrite:
    return NotedWrite(["v"], start, np.array(touched, dtype=np.int64), counted=counted)


def test_rows_touched_below_the_tail_are_kept_each_once():
    pending = PendingDiff(1000)
    pending.add(write(1000, [5, 1200, 7]))  # 1200: in the tail already
    pending.add(write(1001, [7, 3]))
    assert (pending.start, pending.rows().tolist()) == (1000, [3, 5, 7])


def test_a_write_whose_rows_are_unknown_leaves_the_whole_table():
    noted = write(1000, [5])
    noted.checked_against(2)  # DuckDB changed 2 rows, 1 was read ahead
    assert (noted.start, len(noted.touched)) == (0, 0)
    pending = PendingDiff(1000)
    pending.add(noted)
    assert pending.start == 0


def test_a_count_that_matches_or_an_insert_keeps_the_rows():
    noted = write(1000, [5, 6])
    noted.checked_against(2)
    assert noted.start == 1000 and noted.touched.tolist() == [5, 6]
    insert = write(1000, [], counted=False)
    insert.checked_against(50)  # an INSERT's count is of the rows it added, after the last
    assert insert.start == 1000


def test_a_checkpoint_folds_the_rows_into_the_tail():
    """Row ids noted before a checkpoint may have moved: from the lowest of them on, all."""
    pending = PendingDiff(1000)
    pending.add(write(1000, [40, 9]))
    pending.fold()
    assert (pending.start, len(pending.rows())) == (9, 0)


def test_too_many_rows_kept_fold_into_the_tail(monkeypatch):
    monkeypatch.setattr(pending_diffs, "TOUCHED_ROWS_KEPT_MAX", 3)
    pending = PendingDiff(1000)
    pending.add(write(1000, [50, 60]))
    pending.add(write(1000, [20, 70]))
    assert (pending.start, len(pending.rows())) == (20, 0)


def test_past_many_writes_read_ahead_the_whole_table_is_diffed(monkeypatch):
    """Reading each write's rows costs about 1 ms at 1M rows, a whole-table diff 1.5 s once:
    past WRITES_READ_MAX such writes, the whole table."""
    monkeypatch.setattr(pending_diffs, "WRITES_READ_MAX", 2)
    pending = PendingDiff(1000)
    pending.add(write(1000, [5]))
    pending.add(write(1000, [6]))
    pending.add(write(1000, [], counted=False))  # an INSERT: not read ahead, not counted
    assert (pending.start, pending.rows().tolist()) == (1000, [5, 6])
    pending.add(write(1000, [7]))
    assert (pending.start, len(pending.rows())) == (0, 0)
