import json

import pytest

from metasd_pyg.runs import RunFolder

from .conftest import TINY, need_data, run_cli


def test_train_json_and_run_folder(umls_run):
    out, result = umls_run
    assert set(result) >= {"run", "dataset", "mode", "models", "compression", "training",
                           "files"}
    assert result["dataset"] == "umls" and result["mode"] == "metasd"
    assert set(result["models"]) == {"teacher", "student"}
    for model in result["models"].values():
        for split in ("valid", "test"):
            assert 0.0 < model[split]["mrr"] <= 1.0
            assert model[split]["num_queries"] > 0
    student = result["models"]["student"]
    assert student["nonzeros"] == pytest.approx(0.1 * student["params"], rel=0.01)
    assert 0 < result["compression"]["ratio_fp16"] < result["compression"]["ratio_fp32"] < 1
    for name in ("run.json", "config.json", "versions.json", "metrics.jsonl", "train.jsonl",
                 "results.json", "buckets.csv", "categories.csv", "student.safetensors",
                 "model.safetensors", "checkpoints/checkpoint.json"):
        assert (out / name).is_file(), name
    run = RunFolder.open(out)
    assert run.marker()["status"] == "complete"
    versions = run.read_versions()
    assert versions["torch"] and versions["torch_geometric"] and versions["metasd_pyg"]
    train_log = run.read_train_log()
    assert [r["epoch"] for r in train_log] == [1, 2]
    metrics = run.read_metrics()
    during = [m for m in metrics if not m["final"]]
    assert [m["epoch"] for m in during] == [1, 2]  # eval_every 1: one line per evaluation
    final = {(m["model"], m["split"]) for m in metrics if m["final"]}
    assert final == {(r, s) for r in ("teacher", "student") for s in ("valid", "test")}
    header = (out / "buckets.csv").read_text().splitlines()[0].split(",")
    assert {"role", "split", "side", "bucket", "num_queries", "mrr", "hits@10"} <= set(header)
    config = run.read_config()
    assert config["dataset"] == "umls" and config["epochs"] == 2 and config["dim"] == 16


def test_saved_config_is_a_config_file(umls_run, capsys):
    out, _ = umls_run
    code, stdout, err = run_cli(capsys, "train", "--config", out / "config.json",
                                "--print-config", "--json")
    assert code == 0, err
    assert json.loads(stdout)["config"] == json.loads((out / "config.json").read_text())


def test_existing_run_not_overwritten(umls_run, capsys):
    out, _ = umls_run
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code, stdout, err = run_cli(capsys, "train", "--dataset", "umls", "--out", out, *TINY)
    assert code == 1 and stdout == ""
    assert err.count("\n") == 1 and "--overwrite" in err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_resume_continues_the_same_trajectory(tmp_path, capsys):
    root = need_data("nations")
    base = ["--dataset", "nations", "--data-root", root, "--dim", "16", "--batch-size", "1000",
            "--eval-every", "1", "--no-progress", "--no-report", "--json"]
    code, full, err = run_cli(capsys, "train", "--out", tmp_path / "full", "--epochs", "3",
                              *base)
    assert code == 0, err
    code, _, err = run_cli(capsys, "train", "--out", tmp_path / "part", "--epochs", "2", *base)
    assert code == 0, err
    # changing the trajectory is refused, extending the epochs is allowed
    code, _, err = run_cli(capsys, "train", "--out", tmp_path / "part", "--resume",
                           "--epochs", "3", "--lr", "0.5", *base)
    assert code == 1 and "cannot change lr" in err and err.count("\n") == 1
    code, resumed, err = run_cli(capsys, "train", "--out", tmp_path / "part", "--resume",
                                 "--epochs", "3", *base)
    assert code == 0, err
    a, b = json.loads(full), json.loads(resumed)
    for role in ("teacher", "student"):
        assert b["models"][role]["test"]["mrr"] == pytest.approx(a["models"][role]["test"]["mrr"],
                                                                 abs=1e-6)
    run = RunFolder.open(tmp_path / "part")
    assert [r["epoch"] for r in run.read_train_log()] == [1, 2, 3]
    assert "resumed" in run.marker() and run.marker()["status"] == "complete"
    # resuming needs a run folder
    code, _, err = run_cli(capsys, "train", "--out", tmp_path / "nothing", "--resume", *base)
    assert code == 1 and err.count("\n") == 1


def test_overwrite_replaces(tmp_path, capsys):
    root = need_data("nations")
    args = ["train", "--dataset", "nations", "--data-root", root, "--out", tmp_path / "r",
            "--epochs", "1", "--dim", "16", "--mode", "teacher", "--no-progress", "--no-report"]
    assert run_cli(capsys, *args)[0] == 0
    (tmp_path / "r" / "marker.txt").write_text("old")
    code, _, err = run_cli(capsys, *args, "--overwrite")
    assert code == 0, err
    assert not (tmp_path / "r" / "marker.txt").exists()
    assert RunFolder.open(tmp_path / "r").read_config()["mode"] == "teacher"


def test_max_steps_smoke_run_reports_steps_time_and_memory(tmp_path, capsys):
    out = tmp_path / "smoke"
    code, stdout, err = run_cli(capsys, "train", "--dataset", "synthetic:entities=300,triples=3000",
                                "--loss", "sampled", "--num-negatives", "64", "--batch-size",
                                "100", "--max-steps", "7", "--out", out, "--json",
                                "--no-progress")
    assert code == 0, err
    result = json.loads(stdout)
    assert result["training"]["steps"] == 7
    assert result["training"]["step_seconds_median"] > 0
    mem = result["memory"]
    assert 0 < mem["peak_rss_bytes"] and 0 < mem["estimated_bytes"]
    assert result["models"] == {}  # no final evaluation without --final-eval
    saved = json.loads((out / "results.json").read_text())
    assert saved["training"]["steps"] == 7 and "memory" in saved
