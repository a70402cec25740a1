"""``kill -9`` at chosen moments, then ``--resume``: the same final result, bit for bit.

A MetaSD run on UMLS is killed (SIGKILL, real processes) inside a checkpoint write
(after the temporary file, before the rename), inside another atomic write, during a
validation and between two steps, resumed after each kill, and compared with the
uninterrupted run of the same seed: every final weight and every metric equal, bit for
bit. After each kill the folder is checked: its committed checkpoint (if any) loads, and
no temporary file is read as a result. Checked by writing a checkpoint's JSON commit
point before its tensor file once: a kill between the two left a checkpoint whose tensor
file was missing, and the test failed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.paths import REPO, need_archive

ARGS = ["train", "--dataset", "umls", "--dim", "16", "--epochs", "4", "--batch-size", "512",
        "--eval-every", "1", "--threads", "1", "--no-progress", "--no-report", "--seed", "3"]


def _run(out: Path, moment: str, n: int, *extra: str) -> int:
    root = need_archive("umls.tar.gz")
    proc = subprocess.run(
        [sys.executable, "-m", "tests.faults.killer", moment, str(n), "--", *ARGS,
         "--data-root", str(root), "--out", str(out), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    if proc.returncode not in (0, -9):
        raise AssertionError(proc.stderr[-3000:])
    return proc.returncode


def _final(out: Path) -> tuple[dict[str, torch.Tensor], dict]:
    weights = load_file(str(out / "model.safetensors"))
    results = json.loads((out / "results.json").read_text())
    models = {role: {split: m[split] for split in ("valid", "test")}
              for role, m in results["models"].items()}
    return weights, models


def _consistent(out: Path) -> None:
    """After a kill: the committed checkpoint (if any) loads; results only if complete."""
    from metasd_pyg.training.checkpoint import TrainingState, has_checkpoint

    ck = out / "checkpoints"
    if ck.is_dir() and has_checkpoint(ck):
        state = TrainingState.read(ck)
        assert all(bool(torch.isfinite(t).all()) for t in state.model.values())
    if (out / "results.json").exists():
        assert json.loads((out / "run.json").read_text())["status"] == "complete"


def _continue(out: Path) -> list[str]:
    """How a user continues after a kill: --resume once the configuration is saved; before
    that there is nothing to resume (the message says --overwrite)."""
    if (out / "config.json").exists():
        return ["--resume"]
    return ["--overwrite"] if (out / "run.json").exists() else []


def _kill_and_continue(out: Path, kills: list[tuple[str, int]]) -> list[int]:
    """Run with each kill in turn, continuing the folder as a user would (checking it after
    every kill), then once more uninterrupted; the exit codes, up to the first success."""
    codes = []
    for moment, n in [*kills, ("none", 0)]:
        codes.append(_run(out, moment, n, *_continue(out)))
        _consistent(out)
        if codes[-1] == 0:
            break
    return codes


def _same_as(out: Path, reference: tuple[dict, dict], label: object) -> None:
    """The run in ``out`` ended with the reference's metrics and weights, bit for bit."""
    weights, models = _final(out)
    ref_weights, ref_models = reference
    assert models == ref_models, label
    assert set(weights) == set(ref_weights), label
    for name, t in ref_weights.items():
        assert torch.equal(weights[name], t), (label, name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    out = tmp_path_factory.mktemp("ref") / "run"
    assert _run(out, "none", 0) == 0
    return _final(out)


@pytest.mark.parametrize("kills", [
    [("write", 3), ("write", 4)],          # inside checkpoint / log writes of epoch 1-2
    [("evaluate", 2), ("step", 5)],        # during validation, then between steps
    [("write", 9), ("evaluate", 3), ("write", 2)],
])
def test_killed_and_resumed_runs_end_bit_for_bit_as_the_uninterrupted_one(
        tmp_path: Path, reference: tuple[dict, dict], kills: list[tuple[str, int]]) -> None:
    out = tmp_path / "run"
    codes = _kill_and_continue(out, kills)
    assert codes == [-9] * len(kills) + [0], codes  # every planned kill happened
    _same_as(out, reference, kills)


def _submit(out: Path, root: Path, moment: str, n: int) -> int:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.faults.killer", moment, str(n), "--", "ogb-submit",
         "--data-root", str(root), "--out", str(out), "--seeds", "2", "--epochs", "2",
         "--dim", "16", "--batch-size", "500", "--threads", "1", "--no-progress",
         "--no-report"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    if proc.returncode not in (0, -9):
        raise AssertionError(proc.stderr[-3000:])
    return proc.returncode


def test_ogb_submit_killed_in_its_second_seed_resumes_to_the_same_submission(tmp_path):
    from metasd_pyg.data import generate_synthetic, write_ogb_wikikg2

    root = tmp_path / "ogb"
    write_ogb_wikikg2(generate_synthetic(300, 6, 4000, seed=1), root, num_candidates=50)
    ref, out = tmp_path / "ref", tmp_path / "sub"
    assert _submit(ref, root, "none", 0) == 0
    steps = json.loads((ref / "seed-0" / "results.json").read_text())["training"]["steps"]
    assert _submit(out, root, "step", steps + 5) == -9  # inside seed 1's first epoch
    assert (out / "seed-0" / "results.json").exists()
    assert not (out / "seed-1" / "results.json").exists()
    assert _submit(out, root, "none", 0) == 0
    a = json.loads((ref / "submission.json").read_text())
    b = json.loads((out / "submission.json").read_text())
    for key in ("valid_mrr", "test_mrr"):
        assert a[key] == b[key]
    assert [s["reused"] for s in b["per_seed"]] == [True, False]
    for seed in (0, 1):
        wa = load_file(str(ref / f"seed-{seed}" / "model.safetensors"))
        wb = load_file(str(out / f"seed-{seed}" / "model.safetensors"))
        assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_torchrun_run_killed_on_every_rank_resumes_bit_for_bit(tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    if not torchrun.is_file():
        pytest.skip("torchrun is not installed")
    root = need_archive("umls.tar.gz")

    def launch(out: Path, moment: str, n: int, *extra: str) -> int:
        proc = subprocess.run(
            [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m",
             "tests.faults.killer", moment, str(n), "--", *ARGS, "--data-root", str(root),
             "--out", str(out), *extra],
            cwd=REPO, capture_output=True, text=True, timeout=300)
        return proc.returncode

    assert launch(tmp_path / "ref", "none", 0) == 0
    out = tmp_path / "run"
    assert launch(out, "step", 50) != 0  # every rank killed in epoch 3 (21 steps per epoch)
    assert (out / "checkpoints" / "checkpoint.json").exists()
    assert not (out / "results.json").exists()
    assert launch(out, "none", 0, "--resume") == 0
    weights, models = _final(out)
    ref_weights, ref_models = _final(tmp_path / "ref")
    assert models == ref_models
    assert all(torch.equal(weights[k], ref_weights[k]) for k in ref_weights)


@pytest.mark.parametrize("seed", [11, 12])
def test_kills_at_random_moments_end_bit_for_bit(tmp_path: Path, reference: tuple[dict, dict],
                                                 seed: int) -> None:
    """Three kills at moments drawn at random (seeded, so a failure replays): the kind of
    moment and how far into the process it comes."""
    import random

    rng = random.Random(seed)
    limits = {"write": 12, "evaluate": 6, "step": 60}
    kills = [(kind, rng.randint(1, limits[kind]))
             for kind in rng.choices(list(limits), k=3)]
    out = tmp_path / "run"
    codes = _kill_and_continue(out, kills)
    assert -9 in codes and codes[-1] == 0, (kills, codes)
    _same_as(out, reference, kills)
