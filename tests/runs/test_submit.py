"""``metasd-pyg ogb-submit`` end to end on a small graph in ogb's ogbl-wikikg2 layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from metasd_pyg.cli import main
from metasd_pyg.data import generate_synthetic, write_ogb_wikikg2
from metasd_pyg.runs.submit import cpu_model, hardware
from metasd_pyg.storage.folder import RunFolder

TINY = ["--epochs", "2", "--dim", "20", "--batch-size", "500", "--no-progress", "--no-report"]


@pytest.fixture(scope="module")
def ogb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ogb")
    write_ogb_wikikg2(generate_synthetic(300, 6, 4000, seed=1), root, num_candidates=50)
    return root


def _submit(capsys: pytest.CaptureFixture[str], root: Path, out: Path, *extra: str) -> dict:
    capsys.readouterr()
    code = main(["ogb-submit", "--data-root", str(root), "--out", str(out), "--json",
                 *TINY, *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_two_seeds_then_a_third_reusing_and_resuming(ogb_root: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub"
    doc = _submit(capsys, ogb_root, out, "--seeds", "2")
    assert doc["dataset"] == "ogbl-wikikg2" and doc["submitted_model"] == "student"
    valid = [s["valid_mrr"] for s in doc["per_seed"]]
    test = [s["test_mrr"] for s in doc["per_seed"]]
    assert [s["seed"] for s in doc["per_seed"]] == [0, 1]
    assert doc["valid_mrr"]["mean"] == pytest.approx(sum(valid) / 2)
    # in float64 from the start: rounding the MRRs to float32 first moves a small std by 1e-5
    std = float(torch.tensor(test, dtype=torch.float64).std())
    assert doc["test_mrr"]["std"] == pytest.approx(std)
    assert valid[0] != valid[1]  # different seeds, different runs
    assert doc["params"] == 300 * 20 * 2 + 12 * 20 * 2  # ComplEx tables, as OGB counts them
    assert doc["student_nonzeros"] == pytest.approx(0.1 * doc["params"], rel=0.02)
    assert doc["artifact_bytes"] > 0
    assert {h["name"] for h in doc["hyperparameters"] if h["chosen"]} >= {"dim", "epochs"}
    assert doc["hardware"]["cores"] >= 1 and doc["commands"]["submit"].startswith("metasd-pyg")
    for seed in (0, 1):
        res = json.loads((out / f"seed-{seed}" / "results.json").read_text())
        assert res["config"]["seed"] == seed
        assert all(e["config"]["protocol"] == "ogb" for e in res["evaluations"])
    md = (out / "submission.md").read_text()
    assert "| Test MRR | " in md and "#Params" in md
    assert json.loads((out / "submission.json").read_text()) == doc

    # seed 2 interrupted after its first epoch: a checkpoint, status "running"
    first = (out / "seed-0" / "run.json").read_text()
    main(["train", "--dataset", "ogbl-wikikg2", "--data-root", str(ogb_root), "--out",
          str(out / "seed-2"), "--seed", "2", *TINY[2:], "--epochs", "1"])
    marker = RunFolder.open(out / "seed-2").marker()
    (out / "seed-2" / "run.json").write_text(json.dumps({**marker, "status": "running"}))
    doc3 = _submit(capsys, ogb_root, out, "--seeds", "3")
    assert [s["reused"] for s in doc3["per_seed"]] == [True, True, False]
    assert (out / "seed-0" / "run.json").read_text() == first  # not retrained
    assert doc3["per_seed"][2]["best_epoch"] in (1, 2)
    res2 = json.loads((out / "seed-2" / "results.json").read_text())
    assert res2["training"]["epochs"] == 2  # resumed to the configured epochs


def test_a_teacher_submission_and_a_student_of_a_dense_mode_is_refused(
        ogb_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _submit(capsys, ogb_root, tmp_path / "t", "--seeds", "1", "--mode", "teacher")
    assert doc["submitted_model"] == "teacher" and doc["test_mrr"]["std"] is None
    code = main(["ogb-submit", "--data-root", str(ogb_root), "--out", str(tmp_path / "x"),
                 "--mode", "teacher", "--submit-model", "student", *TINY])
    err = capsys.readouterr().err
    assert code != 0 and "trains no student" in err and err.count("\n") == 1


def test_hardware_names_the_cpu_model_from_proc_cpuinfo(tmp_path: Path) -> None:
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nvendor_id\t: Acme\nmodel name\t: Acme Turbo 9000\n")
    assert cpu_model(fake).startswith("Acme Turbo 9000 (")
    fake.write_text("processor\t: 0\n")  # no model name (some ARM kernels): platform's answer
    assert cpu_model(fake) and "Acme" not in cpu_model(fake)
    assert cpu_model(tmp_path / "missing")  # no such file: platform's answer
    doc = hardware()
    assert doc["cpu"] == cpu_model() and doc["cpu_capability"]
