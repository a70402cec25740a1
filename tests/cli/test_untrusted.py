"""Files crafted to run code on load are refused by every command that reads files.

The payload is a pickle whose ``__reduce__`` would create a marker file; it is put where
a checkpoint, the run's weights or an exported student would be, and given as a ``.pt``
file to every command. Each command must end with one line and a non-zero exit, and the
marker must never appear (the library reads only safetensors, JSON, CSV and text; the ogb
split files go through a restricted reader, tested in tests/data/test_ogb_scale.py).
Checked by reading checkpoint tensors with ``torch.load(weights_only=False)`` once: the
payload ran and the test failed. (torch 2.13's ``torch.load`` reads a file named
``.safetensors`` as safetensors, so the broken loader had to rename it first.)
"""

from __future__ import annotations

import json
import pathlib
import pickle
import shutil

import pytest
import torch

from .conftest import run_cli


class Payload:
    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / "PWNED"
    pt = tmp_path / "evil.pt"
    torch.save({"weights": Payload(marker)}, pt)
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(Payload(marker)))
    return marker, pt, raw


def _one_line_failure(code: int, err: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code != 0 and len(lines) == 1 and "Traceback" not in err, err
    assert "internal error" not in err, err


def test_payload_files_given_to_every_command_are_refused(evil, tmp_path, capsys, umls_run):
    marker, pt, raw = evil
    run = tmp_path / "run"
    shutil.copytree(umls_run[0], run)
    commands = [
        ["predict", pt, "--head", "x", "--relation", "y"],
        ["predict", raw, "--head", "x", "--relation", "y"],
        ["export", pt, "--out", tmp_path / "x.safetensors"],
        ["evaluate", pt],
        ["report", pt, "--out", tmp_path / "r.html"],
        ["train", "--config", pt, "--out", tmp_path / "t"],
        ["train", "--config", raw, "--out", tmp_path / "t"],
    ]
    for argv in commands:
        code, _, err = run_cli(capsys, *argv)
        _one_line_failure(code, err)
    # the payload where the run's weights and the student are
    shutil.copy(pt, run / "model.safetensors")
    shutil.copy(pt, run / "student.safetensors")
    for argv in (["evaluate", run], ["export", run, "--out", tmp_path / "y.safetensors"],
                 ["predict", run / "student.safetensors", "--head", "x", "--relation", "y"]):
        code, _, err = run_cli(capsys, *argv)
        _one_line_failure(code, err)
    assert not marker.exists()


def test_payload_in_place_of_a_checkpoint_is_refused(evil, tmp_path, capsys, umls_run):
    marker, pt, _ = evil
    run = tmp_path / "run"
    shutil.copytree(umls_run[0], run)
    (run / "results.json").unlink()  # an unfinished run, to be resumed
    marker_json = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**marker_json, "status": "running"}))
    ckpts = list((run / "checkpoints").glob("*.safetensors"))
    assert ckpts
    for ckpt in ckpts:
        shutil.copy(pt, ckpt)
    code, _, err = run_cli(capsys, "train", "--out", run, "--resume", "--no-progress")
    _one_line_failure(code, err)
    assert "not a readable checkpoint tensor file" in err, err
    assert not marker.exists()
