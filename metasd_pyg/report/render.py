"""Render the long-tail report of one or several runs to self-contained HTML and Markdown.

The HTML file has its CSS inline and its figures embedded as base64 PNG
``data:`` URIs: it loads nothing from the network and can be mailed or
archived as one file. The Markdown variant holds the same tables and links
its figures from a sibling folder ``<name>_figures/``.

Sections: runs; dataset summary and entity degree distribution (log-log);
overall metrics of every model; per-bucket MRR / Hits@k (table and plot);
paired differences with bootstrap confidence intervals
(:func:`metasd_pyg.evaluation.compare`); relation categories; compression;
training curves. Method: MetaSD (Li et al., Findings of EMNLP 2022,
https://aclanthology.org/2022.findings-emnlp.149/).
"""

from __future__ import annotations

import base64
import html
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from metasd_pyg.report import data as D
from metasd_pyg.report import plots as P
from metasd_pyg.report.tables import to_html, to_markdown, wide_buckets
from metasd_pyg.storage.atomic import atomic_write_text

#: Buckets with fewer queries than this get no significance mark in the report.
MIN_QUERIES = 10

PAPER = ("Li, Liu, Yang, Li. Self-Distillation with Meta Learning for Knowledge Graph "
         "Completion. Findings of EMNLP 2022 (aclanthology.org/2022.findings-emnlp.149)")

CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;color:#1d2330;
background:#f6f7f9;line-height:1.45}
header{background:#1f3a5f;color:#fff;padding:18px 32px}
header h1{margin:0 0 4px 0;font-size:22px}
header p{margin:0;font-size:13px;opacity:.85}
main{max-width:1180px;margin:0 auto;padding:8px 24px 40px}
section{background:#fff;border:1px solid #e1e4e8;border-radius:6px;margin:18px 0;
padding:6px 20px 16px}
h2{font-size:17px;border-bottom:1px solid #eaecef;padding-bottom:6px;color:#1f3a5f}
p.note{font-size:12.5px;color:#555;margin:6px 0}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:12.5px;margin:8px 0;min-width:40%}
caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0;font-size:12.5px}
th{background:#eef1f5;text-align:left;padding:5px 8px;border-bottom:2px solid #d0d7de;
white-space:nowrap}
td{padding:4px 8px;border-bottom:1px solid #eaecef;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.sig td{background:#f3f9f1}
img{max-width:100%;height:auto;display:block;margin:8px 0}
nav{font-size:13px;margin:12px 0 0}
nav a{color:#dbe6f3;margin-right:14px;text-decoration:none}
nav a:hover{color:#fff;text-decoration:underline}
footer{font-size:12px;color:#666;text-align:center;padding:16px}
"""


@dataclass
class Section:
    """One report section: title, anchor, HTML/Markdown blocks and figures."""

    anchor: str
    title: str
    notes: list[str] = field(default_factory=list)
    tables: list[tuple[str | None, pd.DataFrame, str | None]] = field(default_factory=list)
    figures: list[tuple[str, bytes]] = field(default_factory=list)


def _sections(runs: list[D.RunData], n_boot: int) -> list[Section]:
    multi = len(runs) > 1
    out: list[Section] = []

    s = Section("runs", "Runs")
    s.tables.append((None, D.runs_table(runs), None))
    s.notes.append("Filtered ranking against all entities (every other known true triple of "
                   "train, valid and test removed), both sides (tail and head queries, head "
                   "queries answered through reciprocal relations), realistic tie policy "
                   "(mean of optimistic and pessimistic rank). Model selection on the valid "
                   "MRR of the student; test is reported, never used for selection.")
    out.append(s)

    s = Section("dataset", "Dataset")
    s.tables.append((None, D.dataset_table(runs), None))
    s.figures.append(("degree", P.degree_plot(runs)))
    s.notes.append("Degree = number of train triples an entity takes part in (as head or "
                   "tail). Relation categories by the Bordes et al. (2013) rule on train "
                   "(average tails per head / heads per tail, threshold 1.5).")
    out.append(s)

    s = Section("overall", "Overall metrics")
    overall = D.overall_table(runs)
    for split in ("test", "valid"):
        part = overall[overall["split"] == split].drop(columns=["split"])
        if not multi or part["dataset"].nunique() == 1:
            part = part.drop(columns=["dataset"])
        s.tables.append((f"{split} split", part.reset_index(drop=True), None))
    out.append(s)

    s = Section("buckets", "Long-tail buckets")
    buckets = D.bucket_table(runs, "test", "both")
    if not buckets.empty:
        by = str(buckets["bucket_by"].iloc[0])
        scheme = {"target": "train degree of the entity to predict",
                  "query": "train degree of the given entity of the query",
                  "relation": "train frequency of the query relation",
                  "category": "relation category"}.get(by, by)
        s.notes.append(f"Test queries of both sides bucketed by {scheme}; bucket 'a-b' holds "
                       "values a..b, '0' entities unseen in train. 'micro' = all queries, "
                       "'macro' = unweighted mean over non-empty buckets.")
        s.tables.append(("test, both sides", wide_buckets(buckets), None))
        s.figures.append(("buckets", P.bucket_plot(buckets)))
        for side in ("tail", "head"):
            part = D.bucket_table(runs, "test", side)
            if not part.empty:
                s.tables.append((f"test, {side} prediction only",
                                 wide_buckets(part, metrics=("mrr", "hits@10")), None))
    out.append(s)

    s = Section("differences", "Paired differences")
    diff = D.difference_table(runs, n_boot=n_boot)
    if diff.empty:
        s.notes.append("No pair of models evaluated on the same test queries.")
    else:
        s.notes.append(f"Per bucket, mean paired difference of reciprocal ranks (A - B = "
                       f"MRR_A - MRR_B) on the same test queries, with a percentile bootstrap "
                       f"95% confidence interval ({n_boot} resamples, seed 0). Highlighted "
                       f"rows: the interval excludes 0. Buckets with fewer than "
                       f"{MIN_QUERIES} queries are marked 'too few' (their interval means "
                       "little).")
        if "significant" in diff.columns and "num_queries" in diff.columns:
            diff = diff.copy()
            diff["significant"] = [
                sig if (isinstance(n, int | float) and n >= MIN_QUERIES) else
                ("too few" if isinstance(n, int | float) and n > 0 else "-")
                for sig, n in zip(diff["significant"], diff["num_queries"])]
        cols = [c for c in ("model_a", "model_b", "bucket", "num_queries", "mrr_a", "mrr_b",
                            "mrr_diff", "ci_low", "ci_high", "significant", "note")
                if c in diff.columns]
        table = diff[cols].rename(columns={"model_a": "A", "model_b": "B",
                                           "num_queries": "queries", "mrr_a": "MRR A",
                                           "mrr_b": "MRR B", "mrr_diff": "A - B",
                                           "ci_low": "CI low", "ci_high": "CI high"})
        s.tables.append((None, table, "significant"))
        fig = P.difference_plot(diff)
        if fig is not None:
            s.figures.append(("differences", fig))
    out.append(s)

    s = Section("categories", "Relation categories")
    cats = D.category_table(runs, "test")
    if not cats.empty:
        s.notes.append("Test queries by the category of their relation; tail prediction on "
                       "1-N and head prediction on N-1 relations are the hard cases.")
        for side in ("tail", "head"):
            part = cats[cats["side"] == side]
            s.tables.append((f"{side} prediction", wide_buckets(part, ("mrr", "hits@10")),
                             None))
    out.append(s)

    s = Section("compression", "Compression")
    s.notes.append("Non-zeros: kept weights of the student (exact zeros elsewhere). Bytes: the "
                   "exported safetensors artifact (metasd-pyg export; sparse tables, names, "
                   "metadata) for students, 4 bytes per weight for dense models. Ratio: "
                   "bytes over the dense fp32 teacher's (4 x its parameters).")
    s.tables.append((None, D.compression_table(runs), None))
    out.append(s)

    s = Section("curves", "Training curves")
    curves = D.curves(runs)
    fig = P.curves_plot(curves)
    if fig is None:
        s.notes.append("No training log recorded.")
    else:
        s.figures.append(("curves", fig))
        s.notes.append("Valid MRR of the student (solid; of the model itself for dense runs) "
                       "and of the dense teacher (dashed). The loss of a MetaSD run is the sum "
                       "of the teacher's and the student's losses (not comparable with a "
                       "dense run's). Mask churn = share of mask entries that changed at the "
                       "epoch's recomputations.")
    out.append(s)
    return out


def render_html(sections: list[Section], title: str, subtitle: str) -> str:
    """The self-contained HTML document of ``sections``.

    Args:
        sections: The report sections.
        title: Page title.
        subtitle: Line under the title.
    """
    nav = "".join(f"<a href='#{s.anchor}'>{html.escape(s.title)}</a>" for s in sections)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p>",
        f"<nav>{nav}</nav></header><main>",
    ]
    for s in sections:
        parts.append(f"<section id='{s.anchor}'><h2>{html.escape(s.title)}</h2>")
        for note in s.notes:
            parts.append(f"<p class='note'>{html.escape(note)}</p>")
        for caption, frame, highlight in s.tables:
            parts.append(to_html(frame, caption=caption, highlight=highlight))
        for name, png in s.figures:
            b64 = base64.b64encode(png).decode("ascii")
            parts.append(f"<img alt='{html.escape(name)}' src='data:image/png;base64,{b64}'>")
        parts.append("</section>")
    parts.append(f"</main><footer>metasd-pyg report. Method: {html.escape(PAPER)}.</footer>")
    parts.append("</body></html>\n")
    return "".join(parts)


def render_markdown(sections: list[Section], title: str, subtitle: str,
                    figure_dir: str) -> str:
    """The Markdown report (figures linked from ``figure_dir``).

    Args:
        sections: The report sections.
        title: Title.
        subtitle: Line under the title.
        figure_dir: Relative folder of the PNG figures.
    """
    lines = [f"# {title}", "", subtitle, ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        for note in s.notes:
            lines += [note, ""]
        for caption, frame, _ in s.tables:
            if caption:
                lines += [f"**{caption}**", ""]
            lines += [to_markdown(frame)]
        for name, _ in s.figures:
            lines += [f"![{name}]({figure_dir}/{name}.png)", ""]
    lines += [f"Method: {PAPER}.", ""]
    return "\n".join(lines)


def write_report(
    runs: list[str | Path],
    out: str | Path,
    *,
    markdown: str | Path | None = None,
    title: str | None = None,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """Write the long-tail report of finished runs.

    Args:
        runs: Run folders (one or several; results of every model in them).
        out: Output HTML file (self-contained), written atomically.
        markdown: Also write a Markdown report here (figures in ``<stem>_figures/``).
        title: Page title (default from the runs).
        n_boot: Bootstrap replicates of the paired differences.

    Returns:
        ``{"html", "markdown", "bytes", "runs", "models", "sections"}``.
    """
    data = D.load_runs(list(runs))
    datasets = sorted({r.dataset["name"] for r in data})
    title = title or f"MetaSD long-tail report: {', '.join(r.name for r in data)}"
    subtitle = (f"{len(data)} run(s) on {', '.join(datasets)}; generated "
                f"{time.strftime('%Y-%m-%d %H:%M')} by metasd-pyg "
                f"{data[0].versions.get('metasd_pyg', '')}")
    sections = _sections(data, n_boot)
    doc = render_html(sections, title, subtitle)
    out = Path(out)
    atomic_write_text(out, doc)
    md_path = None
    if markdown is not None:
        md_path = Path(markdown)
        fig_dir = md_path.with_name(md_path.stem + "_figures")
        fig_dir.mkdir(parents=True, exist_ok=True)
        for s in sections:
            for name, png in s.figures:
                (fig_dir / f"{name}.png").write_bytes(png)
        atomic_write_text(md_path, render_markdown(sections, title, subtitle, fig_dir.name))
    multi = len(data) > 1
    return {
        "html": str(out),
        "markdown": str(md_path) if md_path else None,
        "bytes": out.stat().st_size,
        "runs": [str(r.path) for r in data],
        "models": [D.label(r, role, multi) for r in data for role in r.roles],
        "sections": [s.title for s in sections],
    }
