"""``metasd-pyg report``: one self-contained HTML long-tail report of one or several runs."""

from __future__ import annotations

import argparse
from typing import Any

from metasd_pyg.cli.output import check_output, human_bytes
from metasd_pyg.errors import ConfigError

EPILOG = """\
examples:
  metasd-pyg report runs/quickstart --out report.html
  metasd-pyg report runs/umls-metasd runs/umls-dense --out umls.html --markdown umls.md
  metasd-pyg report runs/a runs/b --out cmp.html --overwrite --json

The HTML file embeds its figures and styles (no network needed to view it). With
several runs, models are labelled <run>:<role> and paired differences compare
every model with the first run's student on the same test queries.
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``report`` subcommand.

    Args:
        sub: The subparsers action of the main parser.
        common: Parent parser with the common output flags.
    """
    p = sub.add_parser("report", parents=[common], help="long-tail report of runs (HTML)",
                       description="Write one self-contained HTML report (and Markdown on "
                       "request) of finished runs: dataset and degree distribution, overall "
                       "metrics, long-tail buckets, paired differences with confidence "
                       "intervals, relation categories, compression, training curves.",
                       epilog=EPILOG)
    p.add_argument("runs", nargs="+", metavar="RUN", help="finished run folders")
    p.add_argument("--out", required=True, metavar="FILE.html", help="HTML file to write")
    p.add_argument("--markdown", metavar="FILE.md",
                   help="also write Markdown (figures in FILE_figures/)")
    p.add_argument("--title", help="page title")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="bootstrap resamples of the paired differences (default: 1000)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(handler=run_report, render=render_report)


def run_report(args: argparse.Namespace) -> dict[str, Any]:
    """Run the ``report`` subcommand."""
    from metasd_pyg.report import write_report

    if args.bootstrap < 1:
        raise ConfigError(f"--bootstrap must be >= 1, got {args.bootstrap}")
    out = check_output(args.out, args.overwrite, (".html", ".htm"))
    md = check_output(args.markdown, args.overwrite, (".md", ".markdown")) \
        if args.markdown else None
    if md is not None:
        figures = md.with_name(md.stem + "_figures")
        if figures.exists() and not args.overwrite:
            raise ConfigError(f"{figures} already exists; pass --overwrite to replace "
                              "its figures")
    return write_report(args.runs, out, markdown=md, title=args.title, n_boot=args.bootstrap)


def render_report(result: dict[str, Any]) -> str:
    """Human-readable summary of a ``report`` result."""
    lines = [f"report    {result['html']} ({human_bytes(result['bytes'])}, self-contained)"]
    if result.get("markdown"):
        lines.append(f"markdown  {result['markdown']}")
    lines.append(f"models    {', '.join(result['models'])}")
    return "\n".join(lines)
