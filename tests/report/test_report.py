import math
import re

import pandas as pd
import pytest

from metasd_pyg.errors import RunFolderError
from metasd_pyg.report import data as D
from metasd_pyg.report import load_runs, write_report
from metasd_pyg.report.tables import fmt, to_html, to_markdown, wide_buckets
from metasd_pyg.storage import RunFolder

EXTERNAL = re.compile(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", re.I)


def test_train_writes_its_report(nations_runs):
    doc = (nations_runs[0] / "report.html").read_text()
    assert "Long-tail buckets" in doc and not EXTERNAL.search(doc)


def test_two_run_report(nations_runs, tmp_path):
    out = tmp_path / "cmp.html"
    info = write_report(nations_runs, out, markdown=tmp_path / "cmp.md", n_boot=100)
    assert info["models"] == ["metasd:teacher", "metasd:student", "dense_same_nnz:dense_same_nnz"]
    doc = out.read_text()
    assert not EXTERNAL.search(doc) and "<script" not in doc and "<link" not in doc
    assert doc.count("data:image/png;base64,") == 4  # degree, buckets, diffs, curves
    for text in ("metasd:student", "dense_same_nnz:dense_same_nnz", "N-N", "micro",
                 "ratio fp32"):
        assert text in doc, text
    md = (tmp_path / "cmp.md").read_text()
    assert md.count("## ") == 8 and "| A | B |" in md


def test_tables(nations_runs):
    runs = load_runs(nations_runs)
    overall = D.overall_table(runs)
    assert set(overall["split"]) == {"test", "valid"} and len(overall) == 6
    results = runs[0].results["models"]["student"]["test"]
    row = overall[(overall["split"] == "test") & (overall["model"] == "metasd:student")]
    assert row["MRR"].item() == pytest.approx(results["mrr"])
    diff = D.difference_table(runs, n_boot=50)
    pairs = set(zip(diff["model_a"], diff["model_b"]))
    assert pairs == {("metasd:student", "metasd:teacher"),
                     ("metasd:student", "dense_same_nnz:dense_same_nnz")}
    micro = diff[(diff["bucket"] == "micro") & (diff["model_b"] == "metasd:teacher")]
    teacher = runs[0].results["models"]["teacher"]["test"]["mrr"]
    assert micro["mrr_diff"].item() == pytest.approx(results["mrr"] - teacher, abs=1e-9)
    comp = D.compression_table(runs).set_index("model")
    student = comp.loc["metasd:student"]
    assert student["non-zeros"] < 0.11 * student["parameters"]
    assert student["bytes fp32"] == (nations_runs[0] / "student.safetensors").stat().st_size
    assert comp.loc["metasd:teacher", "ratio fp32"] == pytest.approx(1.0)
    assert comp.loc["dense_same_nnz:dense_same_nnz", "ratio fp32"] < 0.15
    cats = D.category_table(runs)
    assert set(cats["bucket"]) <= {"1-1", "1-N", "N-1", "N-N"}
    n_test = runs[0].dataset["test"]
    per_model = cats[(cats["side"] == "tail")].groupby("model")["num_queries"].sum()
    assert (per_model == n_test).all()
    curves = D.curves(runs)
    assert list(curves[curves["run"] == "metasd"]["epoch"]) == [1, 2]


def test_ranks_live_beside_results_and_format_1_still_reads(nations_runs, tmp_path):
    import json
    import shutil

    results = json.loads((nations_runs[0] / "results.json").read_text())
    assert results["format_version"] == 2
    tests_ = [e for e in results["evaluations"] if e["split"] == "test"]
    assert tests_ and all("ranks" not in e and e["ranks_key"] == f"{e['role']}/test"
                          for e in tests_)
    new = load_runs([nations_runs[0]])[0].test_result("student", "s")
    n_test = results["dataset"]["test"]
    assert len(new.ranks) == 2 * n_test and set(new.ranks["side"]) == {"tail", "head"}
    assert new.ranks["rank"].ge(1).all() and new.ranks["bucket"].notna().all()
    assert new.mrr == pytest.approx((1 / new.ranks["rank"]).mean())
    # a run written before the ranks file (format 1): the ranks inline in results.json
    old = tmp_path / "old"
    shutil.copytree(nations_runs[0], old)
    folder = RunFolder.open(old)
    for ev in tests_:
        ranks = folder.read_ranks(ev.pop("ranks_key"))
        ev["ranks"] = {c: ranks[c].tolist() for c in ranks.columns}
    results["format_version"] = 1
    (old / "results.json").write_text(json.dumps(results))
    (old / "ranks.safetensors").unlink()
    back = load_runs([old])[0].test_result("student", "s")
    pd.testing.assert_frame_equal(back.ranks, new.ranks, check_dtype=False)
    # a format-2 run whose ranks file is gone is reported by name, not by a traceback
    shutil.copytree(nations_runs[0], tmp_path / "lost")
    (tmp_path / "lost" / "ranks.safetensors").unlink()
    with pytest.raises(RunFolderError, match=r"ranks\.safetensors: missing"):
        load_runs([tmp_path / "lost"])[0].test_result("student", "s")


def test_unfinished_run_is_refused(tmp_path):
    run = RunFolder.create(tmp_path / "half")
    with pytest.raises(RunFolderError, match="--resume"):
        write_report([run.path], tmp_path / "r.html")
    with pytest.raises(RunFolderError, match="no run folder"):
        load_runs([])


def test_formatting_helpers():
    assert fmt(None) == "-" and fmt(math.nan) == "-" and fmt(True) == "yes"
    assert fmt(12345, "bytes") == "12,345" and fmt(0.123456, "MRR") == "0.1235"
    assert fmt(3.25, "MR") == "3.2" and fmt(0.5, "ratio fp32") == "0.500"
    frame = pd.DataFrame({"model": ["a", "a", "b", "b"], "bucket": ["0", "1-3"] * 2,
                          "num_queries": [1, 2, 1, 2], "share": [1 / 3, 2 / 3] * 2,
                          "mrr": [0.1, 0.2, 0.3, 0.4], "hits@10": [1.0, 0.5, 0.0, 1.0]})
    wide = wide_buckets(frame, metrics=("mrr",))
    assert list(wide.columns) == ["bucket", "queries", "share", "a MRR", "b MRR"]
    assert wide["b MRR"].tolist() == [0.3, 0.4]
    html = to_html(pd.DataFrame({"x<y": ["<b>"]}))
    assert "&lt;b&gt;" in html and "x&lt;y" in html
    assert to_markdown(pd.DataFrame({"a|b": [1]})).startswith("| a/b |")
