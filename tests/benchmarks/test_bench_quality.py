"""The quality benchmark's report states the epochs each run trained (tiny CSVs)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_quality.py"


@pytest.fixture(scope="module")
def bq() -> ModuleType:
    """The benchmark script as a module (it is not part of the package)."""
    spec = importlib.util.spec_from_file_location("bench_quality", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(method: str, seed: int, best: int, run: int | None) -> dict[str, object]:
    row: dict[str, object] = {"dataset": "kinship", "method": method, "seed": seed,
                              "best_epoch": best, "wall_s": 1.0, "mask_churn": "",
                              "teacher_test_mrr": 0.5, "protocol": "epochs"}
    for k in ("mrr", "hits@1", "hits@3", "hits@10"):
        row[f"test_{k}"] = 0.5
    if run is not None:
        row["epochs_run"] = run
    return row


def test_report_shows_best_and_run_epochs_and_keeps_notes(bq: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "q"
    bq._append(out.with_name("q_runs.csv"), [_run("teacher", 0, 90, 100),
                                              _run("teacher", 1, 60, 100)])
    bq._append(out.with_name("q_buckets.csv"), [])
    md = out.with_suffix(".md")
    md.write_text(f"# Title\n\nold tables\n\n{bq.NOTES_MARKER}\nmy reading\n", encoding="utf-8")
    bq.write_report(out, "cmd")
    text = md.read_text(encoding="utf-8")
    assert "| best epoch / epochs run |" in text
    assert "| 90/100,60/100 |" in text  # --epochs 100, not the protocol's 50
    assert text.startswith("# Title\n") and text.endswith("my reading\n")
    assert "old tables" not in text


def test_report_reads_runs_recorded_before_epochs_run(bq: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "q"
    bq._append(out.with_name("q_runs.csv"), [_run("teacher", 0, 40, None)])
    bq._append(out.with_name("q_buckets.csv"), [])
    bq.write_report(out, "cmd")
    assert "| 40 |" in out.with_suffix(".md").read_text(encoding="utf-8")
