import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from metasd_pyg.export import load_student

from .conftest import need_data, run_cli


def test_evaluate_run_and_checkpoint(umls_run, tmp_path, capsys):
    out, _ = umls_run
    code, stdout, err = run_cli(capsys, "evaluate", out, "--split", "valid", "--max-queries",
                                "60", "--bucket-by", "relation", "--bins", "quantile:3",
                                "--csv", tmp_path / "b.csv", "--json", "-q")
    assert code == 0, err
    res = json.loads(stdout)
    assert set(res) >= {"target", "dataset", "split", "models", "bucket_by", "bins"}
    assert set(res["models"]) == {"teacher", "student"}
    for model in res["models"].values():
        assert model["summary"]["num_queries"] == 120
        buckets = [b for b in model["buckets"] if b["side"] == "both"]
        assert {b["bucket_by"] for b in buckets} == {"relation"}
        assert {"micro", "macro"} <= {b["bucket"] for b in buckets}
    assert (tmp_path / "b.csv").read_text().startswith("model,side,bucket_by,bucket")
    # the checkpoints folder evaluates the last checkpoint
    code, stdout, err = run_cli(capsys, "evaluate", out / "checkpoints", "--model", "student",
                                "--max-queries", "30", "--json", "-q")
    assert code == 0, err
    assert list(json.loads(stdout)["models"]) == ["student"]
    # human output
    code, stdout, _ = run_cli(capsys, "evaluate", out, "--max-queries", "20", "-q")
    assert code == 0 and "teacher" in stdout and "micro" in stdout


def test_report_is_self_contained(umls_run, tmp_path, capsys):
    out, _ = umls_run
    html_path, md_path = tmp_path / "r.html", tmp_path / "r.md"
    code, stdout, err = run_cli(capsys, "report", out, "--out", html_path, "--markdown",
                                md_path, "--bootstrap", "200", "--json")
    assert code == 0, err
    res = json.loads(stdout)
    assert res["html"] == str(html_path) and res["models"] == ["teacher", "student"]
    doc = html_path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", doc)
    assert "<link" not in doc and "<script" not in doc
    assert doc.count("data:image/png;base64,") >= 4
    for title in ("Overall metrics", "Long-tail buckets", "Paired differences",
                  "Relation categories", "Compression", "Training curves", "<table"):
        assert title in doc
    md = md_path.read_text()
    assert "| model |" in md and "r_figures/buckets.png" in md
    assert (tmp_path / "r_figures" / "buckets.png").is_file()
    code, _, err = run_cli(capsys, "report", out, "--out", html_path)
    assert code == 1 and "--overwrite" in err and err.count("\n") == 1


def test_export_and_predict(umls_run, tmp_path, capsys):
    out, _ = umls_run
    sizes = {}
    for dtype in ("fp32", "fp16"):
        path = tmp_path / f"s-{dtype}.safetensors"
        code, stdout, err = run_cli(capsys, "export", out, "--out", path, "--dtype", dtype,
                                    "--json")
        assert code == 0, err
        res = json.loads(stdout)
        assert set(res) >= {"path", "bytes", "dense_teacher_bytes", "ratio", "nonzeros",
                            "sparsity", "encodings", "dtype"}
        assert res["bytes"] == path.stat().st_size
        assert res["sparsity"] == pytest.approx(0.9, abs=0.01)
        sizes[dtype] = res["bytes"]
    assert sizes["fp16"] < sizes["fp32"]
    student = load_student(tmp_path / "s-fp32.safetensors")
    code, stdout, err = run_cli(capsys, "predict", tmp_path / "s-fp32.safetensors", "--head",
                                student.entity_names[0], "--relation",
                                student.relation_names[1], "--k", "5", "--json")
    assert code == 0, err
    answers = json.loads(stdout)["answers"]
    scores = student.score_tails(torch.tensor([0]), torch.tensor([1]))[0]
    assert [a["id"] for a in answers] == scores.argsort(descending=True)[:5].tolist()
    assert answers[0]["entity"] == student.entity_names[answers[0]["id"]]
    # a run folder is read through its student.safetensors; --tail predicts heads
    code, stdout, err = run_cli(capsys, "predict", out, "--tail", student.entity_names[3],
                                "--relation", student.relation_names[0], "--k", "2")
    assert code == 0 and "rank" in stdout, err


def test_export_refuses_to_replace_a_file(umls_run, tmp_path, capsys):
    out, _ = umls_run
    path = tmp_path / "mine.safetensors"
    path.write_bytes(b"user data")
    code, stdout, err = run_cli(capsys, "export", out, "--out", path)
    assert code == 1 and "--overwrite" in err and err.count("\n") == 1 and not stdout
    assert path.read_bytes() == b"user data"
    code, _, err = run_cli(capsys, "export", out, "--out", path, "--overwrite", "--json")
    assert code == 0, err
    assert path.read_bytes() != b"user data"


def test_report_refuses_to_replace_markdown_figures(umls_run, tmp_path, capsys):
    out, _ = umls_run
    figures = tmp_path / "r_figures"
    figures.mkdir()
    (figures / "buckets.png").write_bytes(b"user figure")
    code, _, err = run_cli(capsys, "report", out, "--out", tmp_path / "r.html",
                           "--markdown", tmp_path / "r.md", "--bootstrap", "10")
    assert code == 1 and "--overwrite" in err and err.count("\n") == 1
    assert (figures / "buckets.png").read_bytes() == b"user figure"
    assert not (tmp_path / "r.html").exists()


def test_datasets_list_info_verify(tmp_path, capsys):
    root = need_data("nations")
    code, stdout, err = run_cli(capsys, "datasets", "list", "--data-root", root, "--json")
    assert code == 0, err
    listed = {d["name"]: d for d in json.loads(stdout)["datasets"]}
    assert listed["synthetic"]["available"] == "built-in" and listed["nations"]["available"]
    code, stdout, err = run_cli(capsys, "datasets", "info", "nations", "--data-root", root,
                                "--json")
    assert code == 0, err
    info = json.loads(stdout)
    assert (info["entities"], info["relations"], info["train"]) == (14, 55, 1592)
    assert "relation_categories" in info["statistics"]
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(root / "nations.tar.gz", good)
    code, stdout, err = run_cli(capsys, "datasets", "verify", good, "--json")
    assert code == 0, err
    assert json.loads(stdout)["ok"] is True
    bad = tmp_path / "bad"
    bad.mkdir()
    data = bytearray((root / "nations.tar.gz").read_bytes())
    data[-5] ^= 0xFF
    (bad / "nations.tar.gz").write_bytes(bytes(data))
    code, stdout, err = run_cli(capsys, "datasets", "verify", bad, "--json", "--no-load")
    res = json.loads(stdout)
    assert code == 1 and res["ok"] is False and "checksum" in res["files"][0]["error"]


def test_console_script_subprocess():
    """The installed script: pure JSON on stdout and a silent stderr (no start-up noise)."""
    exe = Path(sys.executable).with_name("metasd-pyg")
    if not exe.exists():
        pytest.skip("console script not installed next to the interpreter")
    root = need_data("nations")
    proc = subprocess.run([str(exe), "datasets", "info", "nations", "--data-root", str(root),
                           "--json", "-q"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["entities"] == 14
    assert proc.stderr == ""
