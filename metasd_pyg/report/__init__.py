"""Long-tail report of one or several runs: self-contained HTML (and Markdown)."""

from metasd_pyg.report.data import RunData, load_runs
from metasd_pyg.report.render import write_report

__all__ = ["RunData", "load_runs", "write_report"]
