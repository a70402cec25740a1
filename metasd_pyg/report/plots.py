"""Matplotlib figures of the long-tail report, rendered to PNG bytes.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas
directly (no ``pyplot``, so no global figure state and no display needed).
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from metasd_pyg.report.data import RunData

#: Colour cycle (colour-blind friendly, Okabe-Ito).
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
          "#000000")
DPI = 110


def to_png(fig: Figure) -> bytes:
    """PNG bytes of ``fig``.

    Args:
        fig: A matplotlib figure.
    """
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def degree_plot(runs: list[RunData]) -> bytes:
    """Entity degree distribution per dataset, log-log: counts and complementary CDF.

    Left: number of entities with each train degree. Right: share of entities
    with degree at least :math:`k` (a straight line for a power law).

    Args:
        runs: The runs (one curve per distinct dataset).
    """
    fig = Figure(figsize=(9.0, 3.4))
    ax_cnt = fig.add_subplot(1, 2, 1)
    ax_ccdf = fig.add_subplot(1, 2, 2)
    seen: list[str] = []
    for run in runs:
        ds = run.dataset
        if ds["name"] in seen:
            continue
        seen.append(ds["name"])
        hist = ds.get("degree_histogram", {"degree": [], "count": []})
        deg = np.asarray(hist["degree"], dtype=float)
        cnt = np.asarray(hist["count"], dtype=float)
        zero = int(cnt[deg == 0].sum()) if deg.size else 0
        keep = deg > 0
        color = COLORS[(len(seen) - 1) % len(COLORS)]
        text = f"{ds['name']}" + (f" ({zero} with degree 0)" if zero else "")
        ax_cnt.loglog(deg[keep], cnt[keep], "o", ms=3, alpha=0.7, color=color, label=text)
        if keep.any() and cnt[keep].max() < 10:  # less than a decade: label minor ticks
            ax_cnt.yaxis.set_minor_formatter(FuncFormatter(_tick))
        if keep.any():
            total = cnt.sum()
            ccdf = (total - np.concatenate([[0.0], np.cumsum(cnt)[:-1]])) / total
            ax_ccdf.loglog(deg[keep], ccdf[keep], "-", lw=1.5, color=color, label=text)
    for ax, ylabel, title in ((ax_cnt, "number of entities", "Entities per degree"),
                              (ax_ccdf, "share of entities with degree >= k",
                               "Complementary CDF")):
        ax.set_xlabel("train degree k (in + out)")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.xaxis.set_major_formatter(FuncFormatter(_tick))
        ax.yaxis.set_major_formatter(FuncFormatter(_tick))
        if ax is ax_ccdf:
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return to_png(fig)


def _tick(value: float, _pos: int) -> str:
    if value >= 1:
        return f"{value:,.0f}"
    return f"{value:g}"


def _short(label: str) -> str:
    return label if len(label) <= 40 else label[:18] + "..." + label[-18:]


def bucket_plot(buckets: pd.DataFrame, metrics: tuple[str, ...] = ("mrr", "hits@10")) -> bytes:
    """Grouped bars: per-bucket metrics of every model (one panel per metric).

    Args:
        buckets: Long table from :func:`~metasd_pyg.report.data.bucket_table`.
        metrics: Metric columns to plot.
    """
    frame = buckets[~buckets["bucket"].isin(["micro", "macro"])]
    models = list(dict.fromkeys(frame["model"]))
    labels = list(dict.fromkeys(frame["bucket"]))
    fig = Figure(figsize=(max(6.0, 1.0 + 0.9 * len(labels)) * len(metrics) / 1.6, 3.8))
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(labels))
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        for j, model in enumerate(models):
            sub = frame[frame["model"] == model].set_index("bucket").reindex(labels)
            ax.bar(x + (j - (len(models) - 1) / 2) * width, sub[metric].to_numpy(dtype=float),
                   width, color=COLORS[j % len(COLORS)], label=_short(model))
        counts = frame.drop_duplicates("bucket").set_index("bucket").reindex(labels)
        ax.set_xticks(x)
        ax.set_xticklabels([f"{b}\n(n={int(n)})" for b, n in
                            zip(labels, counts["num_queries"].fillna(0))], fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_ylabel(metric.upper() if metric == "mrr" else metric.capitalize())
        by = str(frame["bucket_by"].iloc[0]) if len(frame) else "target"
        ax.set_xlabel(f"train degree of the {by} entity" if by in ("target", "query")
                      else f"bucket ({by})")
        ax.grid(True, axis="y", alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7, frameon=False)
    fig.suptitle("Test metrics per long-tail bucket (both sides)", fontsize=10)
    return to_png(fig)


def difference_plot(diff: pd.DataFrame) -> bytes | None:
    """Paired MRR differences per bucket with their 95% confidence intervals.

    Args:
        diff: Table from :func:`~metasd_pyg.report.data.difference_table`.

    Returns:
        PNG bytes, or ``None`` if there is nothing to plot.
    """
    if diff.empty or "mrr_diff" not in diff:
        return None
    frame = diff[diff["mrr_diff"].notna() & (diff["bucket"] != "n/a")]
    if frame.empty:
        return None
    pairs = list(dict.fromkeys(zip(frame["model_a"], frame["model_b"])))
    labels = list(dict.fromkeys(frame["bucket"]))
    fig = Figure(figsize=(max(6.0, 1.0 + 0.8 * len(labels)), 3.6))
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(labels))
    width = 0.6 / max(len(pairs), 1)
    for j, (a, b) in enumerate(pairs):
        sub = frame[(frame["model_a"] == a) & (frame["model_b"] == b)].set_index("bucket")
        sub = sub.reindex(labels)
        y = sub["mrr_diff"].to_numpy(dtype=float)
        lo = y - sub["ci_low"].to_numpy(dtype=float)
        hi = sub["ci_high"].to_numpy(dtype=float) - y
        ax.errorbar(x + (j - (len(pairs) - 1) / 2) * width, y, yerr=[lo, hi], fmt="o",
                    capsize=3, color=COLORS[j % len(COLORS)],
                    label=_short(f"{a} - {b}"))
    ax.axhline(0.0, color="#444444", lw=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("MRR difference (95% CI)")
    ax.set_title("Paired test MRR differences per bucket", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    return to_png(fig)


def curves_plot(curves: pd.DataFrame) -> bytes | None:
    """Training curves per run: loss, valid MRR, sparsity, mask churn (2 x 2 panels).

    Args:
        curves: Table from :func:`~metasd_pyg.report.data.curves`.

    Returns:
        PNG bytes, or ``None`` without any epoch record.
    """
    if curves.empty:
        return None
    fig = Figure(figsize=(9.0, 5.6))
    panels: list[tuple[str, str]] = [("loss", "training loss"), ("valid_mrr", "valid MRR"),
                                     ("sparsity", "student sparsity"),
                                     ("mask_churn", "mask churn (share changed)")]
    runs = list(dict.fromkeys(curves["run"]))
    last_epoch = float(curves["epoch"].max()) if curves["epoch"].notna().any() else 1.0
    has_student = {run: bool(curves.loc[curves["run"] == run, "sparsity"].notna().any())
                   for run in runs}
    for i, (col, title) in enumerate(panels):
        ax = fig.add_subplot(2, 2, i + 1)
        drawn = False
        for j, run in enumerate(runs):
            sub = curves[curves["run"] == run]
            color = COLORS[j % len(COLORS)]
            with_teacher = col == "valid_mrr" and has_student[run]
            for c, style, suffix in ((col, "-o", ""),) + (
                    (("teacher_valid_mrr", "--s", " (teacher)"),) if with_teacher else ()):
                data = sub[["epoch", c]].dropna()
                if data.empty:
                    continue
                if len(runs) > 1:
                    name = run + suffix
                else:
                    name = "teacher" if suffix else ("student" if has_student[run] else "model")
                ax.plot(data["epoch"], data[c], style, ms=3, color=color, lw=1.2,
                        label=_short(name), alpha=0.9 if suffix == "" else 0.6)
                drawn = True
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(0.5, last_epoch + 0.5)
        if col == "sparsity":
            ax.set_ylim(0.0, 1.0)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
        if not drawn:
            ax.text(0.5, 0.5, "not recorded (no dynamic masks in these runs)", ha="center",
                    va="center", transform=ax.transAxes, fontsize=8, color="#777777")
        elif col == "valid_mrr" or (i == 0 and len(runs) > 1):
            ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return to_png(fig)


def finite(x: Any) -> bool:
    """Whether ``x`` is a finite number."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
