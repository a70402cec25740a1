"""Presentation of the report tables: wide layouts, number formats, HTML and Markdown."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

#: Number of decimals per kind of column.
_METRIC_DECIMALS = 4


def fmt(value: Any, column: str = "") -> str:
    """Human format of one cell: thousands separators, 4 decimals for metrics, '-' for missing.

    Args:
        value: The cell.
        column: Its column name (chooses the format).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    col = column.lower()
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()
                                  and ("bytes" in col or "param" in col or "zeros" in col
                                       or col in ("queries", "entities", "relations", "train",
                                                  "valid", "test", "epochs", "dim"))):
        return f"{int(value):,}"
    if isinstance(value, float):
        if col == "mr" or col.endswith(" mr"):
            return f"{value:,.1f}"
        if "time" in col or "degree" in col:
            return f"{value:,.1f}"
        if "share" in col or "density" in col or "ratio" in col or "sparsity" in col:
            return f"{value:.3f}"
        return f"{value:.{_METRIC_DECIMALS}f}"
    return str(value)


def wide_buckets(frame: pd.DataFrame, metrics: Sequence[str] = ("mrr", "hits@1", "hits@10"),
                 index: Sequence[str] = ("bucket",)) -> pd.DataFrame:
    """Per-bucket long table -> one row per bucket, ``<model> <metric>`` columns.

    Args:
        frame: Long table (columns model, bucket, num_queries, share, metrics...).
        metrics: Metrics to show per model.
        index: Row keys (``bucket``, or ``bucket`` and ``side``).
    """
    if frame.empty:
        return frame
    models = list(dict.fromkeys(frame["model"]))
    first = frame[frame["model"] == models[0]]
    out = first[[*index, "num_queries", "share"]].rename(
        columns={"num_queries": "queries"}).reset_index(drop=True)
    for model in models:
        sub = frame[frame["model"] == model].set_index(list(index))
        for m in metrics:
            key = pd.MultiIndex.from_frame(out[list(index)]) if len(index) > 1 else out[index[0]]
            name = m.upper() if m in ("mrr", "mr") else m.replace("hits", "Hits")
            out[f"{model} {name}"] = sub[m].reindex(key).to_numpy()
    return out


def _kind(value: Any) -> str:
    return "num" if isinstance(value, int | float) and not isinstance(value, bool) else "txt"


def to_html(frame: pd.DataFrame, *, caption: str | None = None, highlight: str | None = None
            ) -> str:
    """A ``<table>`` of ``frame`` with formatted cells (escaped; no external resources).

    Args:
        frame: The table.
        caption: Optional caption.
        highlight: Column whose truthy cells mark the row (class ``sig``).
    """
    if frame.empty:
        return "<p class='empty'>(no data)</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for rec in frame.to_dict(orient="records"):
        cls = " class='sig'" if highlight and rec.get(highlight) is True else ""
        cells = "".join(f"<td class='{_kind(v)}'>{html.escape(fmt(v, str(c)))}</td>"
                        for c, v in rec.items())
        rows.append(f"<tr{cls}>{cells}</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (f"<div class='scroll'><table>{cap}<thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown pipe table of ``frame`` with formatted cells.

    Args:
        frame: The table.
    """
    if frame.empty:
        return "(no data)\n"
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(c.replace("|", "/") for c in cols) + " |",
             "|" + "|".join("---" for _ in cols) + "|"]
    for rec in frame.to_dict(orient="records"):
        lines.append("| " + " | ".join(fmt(v, str(c)).replace("|", "/")
                                       for c, v in rec.items()) + " |")
    return "\n".join(lines) + "\n"
