"""Device choice and batches: SET device, and a batch that runs out of device memory is split."""

from __future__ import annotations

import torch

from quarrydb.engine.database import Database
from quarrydb.engine.session import Session
from quarrydb.udfs.registry import FunctionSpec, Implementation, ModelSpec, Param, Registry

DEVICE_LIMIT = 3  # the pretend device holds at most this many values per batch


def shout(model: object, batch: list[str], options: dict) -> list[str]:
    """A kernel whose device has room for DEVICE_LIMIT values, like a GPU with little memory."""
    if len(batch) > DEVICE_LIMIT:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return [text.upper() for text in batch]


def small_device_registry() -> Registry:
    registry = Registry()
    registry.add_function(FunctionSpec("shout", (Param("input", "input"),), {"text": "upper"},
                                       "upper-case text"))
    registry.add_model(ModelSpec("upper", "text", "package", "1", lambda device: object(),
                                 lambda: True, batch_size=8))
    registry.implement("shout", "upper", Implementation(shout, "VARCHAR"))
    return registry


def test_a_batch_that_runs_out_of_memory_is_split_and_nothing_is_lost():
    session = Session(Database(), small_device_registry())
    session.execute("CREATE TABLE t AS SELECT 'word ' || i AS w FROM range(20) r(i)")
    result = session.execute("SELECT shout(w) AS s FROM t ORDER BY w")
    assert result.table.column("s").to_pylist() == sorted(f"WORD {i}" for i in range(20))
    assert result.stats["model_inputs"] == 20
    assert max(result.stats["stages"][0]["batches"]) == 8  # asked for 8, the device took <= 3


def test_set_device_is_per_connection_and_shown_by_show_models(con):
    first, second = con.cursor(), con.cursor()
    first.execute("SET device = 'cpu'")
    first.execute("SHOW MODELS")
    assert {row[5] for row in first.fetchall()} == {"cpu"}
    second.execute("SET device = 'auto'")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    second.execute("SHOW MODELS")
    assert {row[5] for row in second.fetchall()} == {expected}
