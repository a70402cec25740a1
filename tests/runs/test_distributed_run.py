"""A data-parallel run through the pipeline: rank 0 writes the run folder, rank 1 nothing.

Two gloo processes run ``train_run`` as ``torchrun`` would start them (its
environment variables); rank 1 records every file it opens for writing, replaces,
renames or deletes under the run folder. Checked by breaking it once (rank 1 with
the run logger): the test failed.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
import torch.multiprocessing as mp

from tests.paths import need_archive


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _record_writes(folder: Path, writes: list[str]) -> None:
    """Patch the file operations of this process to record those under ``folder``."""
    folder = folder.resolve()

    def inside(p: Any) -> bool:
        try:
            return Path(os.fspath(p)).resolve().is_relative_to(folder)
        except TypeError:
            return False

    real_open, real_replace, real_rename = builtins.open, os.replace, os.rename
    real_unlink, real_rmtree, real_mkdir = os.unlink, shutil.rmtree, os.mkdir

    def open_(file: Any, mode: str = "r", *a: Any, **k: Any) -> Any:
        if any(c in mode for c in "wax+") and inside(file):
            writes.append(f"open({file}, {mode})")
        return real_open(file, mode, *a, **k)

    def wrap(name: str, real: Any) -> Any:
        def f(path: Any, *a: Any, **k: Any) -> Any:
            if inside(path):
                writes.append(f"{name}({path})")
            return real(path, *a, **k)
        return f

    builtins.open = open_
    os.replace, os.rename = wrap("replace", real_replace), wrap("rename", real_rename)
    os.unlink, os.mkdir = wrap("unlink", real_unlink), wrap("mkdir", real_mkdir)
    shutil.rmtree = wrap("rmtree", real_rmtree)


def _worker(rank: int, port: int, root: str, out: str, log: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    from metasd_pyg.runs.config import RunConfig
    from metasd_pyg.runs.pipeline import train_run

    writes: list[str] = []
    if rank == 1:
        _record_writes(Path(out), writes)
    cfg = RunConfig.resolve({"dataset": "umls", "data_root": root, "dim": 16, "epochs": 2,
                             "eval_every": 1, "batch_size": 500, "progress": False,
                             "report": True, "threads": 1, "out": out})
    summary = train_run(cfg)
    Path(f"{log}.{rank}").write_text(json.dumps({"writes": writes, "summary": summary}))


def test_only_rank_0_writes_the_run_folder(tmp_path: Path) -> None:
    root = need_archive("umls.tar.gz")
    out, log = tmp_path / "run", tmp_path / "log"
    mp.spawn(_worker, args=(_free_port(), str(root), str(out), str(log)), nprocs=2, join=True)
    r0 = json.loads(Path(f"{log}.0").read_text())
    r1 = json.loads(Path(f"{log}.1").read_text())
    assert r1["writes"] == [], r1["writes"]
    assert r1["summary"] == {"rank": 1, "world_size": 2, "run": str(out),
                             "steps": r0["summary"]["training"]["steps"]}
    assert set(r0["summary"]["models"]) == {"teacher", "student"}
    for name in ("results.json", "ranks.safetensors", "report.html", "student.safetensors"):
        assert (out / name).is_file(), name
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_rank_0_refusing_the_folder_stops_rank_1_with_its_reason(tmp_path: Path) -> None:
    root = need_archive("umls.tar.gz")
    out, log = tmp_path / "run", tmp_path / "log"
    (out / "mine").mkdir(parents=True)  # a foreign, non-empty folder: refused
    with pytest.raises(mp.ProcessRaisedException) as info:
        mp.spawn(_worker, args=(_free_port(), str(root), str(out), str(log)), nprocs=2,
                 join=True)
    assert "RunFolderError" in str(info.value)
    assert (out / "mine").is_dir() and not (out / "run.json").exists()
