"""Print an Arrow result as a plain text table, as the shell and the demo show it."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

MAX_WIDTH = 48


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], float):
        head = ", ".join(f"{v:.3f}" for v in value[:3])
        return f"[{head}, ... ({len(value)} values)]"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = " ".join(str(value).split())
    return text if len(text) <= MAX_WIDTH else text[: MAX_WIDTH - 1] + "…"


def format_table(table: pa.Table, max_rows: int = 40) -> str:
    """A boxed table with column names, one line per row, long values shortened.

    EXPLAIN output is text meant to be read whole, so it is printed as it is."""
    names = table.schema.names
    if names == ["explain_key", "explain_value"]:
        return "\n\n".join(f"{k}\n{v}" for k, v in zip(*(c.to_pylist() for c in table.columns)))
    rows = [[_cell(v) for v in row] for row in zip(*(c.to_pylist() for c in table.columns))]
    shown = rows[:max_rows]
    widths = [max([len(n)] + [len(r[i]) for r in shown]) for i, n in enumerate(names)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def render(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    out = [line, render(names), line, *(render(r) for r in shown), line]
    if len(rows) > max_rows:
        out.append(f"({len(rows)} rows, {max_rows} shown)")
    return "\n".join(out)
