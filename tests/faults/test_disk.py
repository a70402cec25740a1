"""A full disk and an unwritable folder: refused before training, never a corrupt checkpoint.

Checked by removing the cleanup of a failed checkpoint write once (its temporary file
stayed) and the disk check once (the run started on a filesystem reported full).
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from metasd_pyg.errors import RunFolderError
from tests.cli.conftest import run_cli
from tests.paths import need_archive


def test_an_unwritable_output_folder_is_one_line_before_training(tmp_path, capsys):
    root = need_archive("umls.tar.gz")
    code, _, err = run_cli(capsys, "train", "--dataset", "umls", "--data-root", root,
                           "--out", "/sys/metasd-run", "--epochs", "1", "--no-progress")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert "/sys/metasd-run: cannot write there" in lines[0]


def test_too_little_disk_is_refused_with_the_numbers(tmp_path, capsys, monkeypatch):
    import shutil

    from metasd_pyg.runs.pipeline import disk_bytes
    from metasd_pyg.training.memory import MemoryEstimate

    need = disk_bytes(MemoryEstimate({"model (float32)": 10, "optimizer state (adagrad)": 10,
                                      "student masks (bool)": 3}))
    assert need == 2 * 23 + 2 * 13
    root = need_archive("umls.tar.gz")
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda p: real(p)._replace(free=1000))  # a nearly full disk
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--dataset", "umls", "--data-root", root,
                           "--out", out, "--epochs", "1", "--no-progress")
    assert code == 1 and "the run needs about" in err and "0.00 GB free" in err, err
    assert not out.exists() and not list(tmp_path.glob(".*.lock"))


def test_a_write_error_in_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    import metasd_pyg.training.checkpoint as ck
    from metasd_pyg.training import Built, MetaSDConfig, compose
    from metasd_pyg.training.checkpoint import TrainingState
    from tests.training.helpers import tiny_evaluate, toy_graph

    real = ck.save_file
    calls = {"n": 0}

    def failing(tensors, path, *a, **k):  # the second checkpoint hits a full disk
        calls["n"] += 1
        real(tensors, path, *a, **k)  # a partial file is on disk, then the error
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck, "save_file", failing)
    cfg = MetaSDConfig.flat(dim=8, epochs=3, batch_size=32, progress=False, seed=0,
                            device="cpu", loss="sampled", num_negatives=12, mode="metasd",
                            sparsity=0.6)
    folder = tmp_path / "ck"
    run = compose(toy_graph(num_entities=40, num_relations=3, n=200), cfg,
                  Built(evaluator=tiny_evaluate, checkpoint_dir=folder))
    with pytest.raises(RunFolderError, match=r"cannot write the checkpoint ckpt-00002"
                                             r"\.safetensors \(No space left on device\); "
                                             r"the previous checkpoint is kept"):
        run.fit()
    assert TrainingState.read(folder).epoch == 1
    assert sorted(p.name for p in Path(folder).iterdir()) == ["checkpoint.json",
                                                             "ckpt-00001.safetensors"]
