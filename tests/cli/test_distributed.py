"""`torchrun ... metasd-pyg train`: the documented launch, rank 0's writes, a killed rank.

Real processes on gloo: the launch command is read from docs/distributed.md and run
with the test's data root, folder and a short schedule. Checked by breaking it once
(every rank writing its logs: the duplicate-record check failed).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metasd_pyg.cli import main
from tests.paths import REPO

from .conftest import need_data

BIN = Path(sys.executable).parent
TORCHRUN, SCRIPT = BIN / "torchrun", BIN / "metasd-pyg"
SCHEDULE = ["--epochs", "6", "--dim", "32", "--batch-size", "256", "--lr", "0.5",
            "--eval-every", "2", "--no-report", "--no-progress", "--seed", "1"]

pytestmark = pytest.mark.skipif(not (TORCHRUN.is_file() and SCRIPT.is_file()),
                                reason="torchrun or the metasd-pyg script is not installed")


def documented_command() -> list[str]:
    """The launch command of docs/distributed.md (the block after its marker)."""
    doc = (REPO / "docs" / "distributed.md").read_text()
    m = re.search(r"<!-- launch-command.*?-->\s*```bash\n(.+?)\n```", doc, re.S)
    assert m, "docs/distributed.md lost its launch command"
    return shlex.split(m.group(1).replace('"$(which metasd-pyg)"', "METASD_PYG"))


def launch(root: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    argv = documented_command()
    assert argv[:4] == ["torchrun", "--standalone", "--nproc-per-node", "2"]
    argv = [str(TORCHRUN) if a == "torchrun" else str(SCRIPT) if a == "METASD_PYG"
            else str(root) if a == "../shared/datasets" else str(out) if a == "runs/umls-2ranks"
            else a for a in argv]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([*argv, *SCHEDULE, *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def test_documented_launch_equals_one_process_and_only_rank_0_writes(tmp_path, capsys):
    root = need_data("umls")
    proc = launch(root, tmp_path / "two", "--json")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    two = json.loads(out)  # one JSON document: rank 1 printed nothing
    code = main(["train", "--dataset", "umls", "--data-root", str(root), "--out",
                 str(tmp_path / "one"), "--threads", "1", "--json", *SCHEDULE])
    one = json.loads(capsys.readouterr().out)
    assert code == 0
    for role in ("teacher", "student"):
        for split in ("valid", "test"):
            a, b = two["models"][role][split]["mrr"], one["models"][role][split]["mrr"]
            assert abs(a - b) < 0.005, (role, split, a, b)
    run = tmp_path / "two"
    train_log = (run / "train.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in train_log] == [1, 2, 3, 4, 5, 6]
    metrics = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    keys = [(m.get("epoch"), m.get("split"), m.get("model"), m.get("final")) for m in metrics]
    assert len(keys) == len(set(keys)), "a record was written twice (more than one writer)"
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    assert (run / "ranks.safetensors").is_file() and (run / "student.safetensors").is_file()


def test_a_killed_rank_stops_the_run_and_the_folder_resumes_on_one_process(tmp_path, capsys):
    root = need_data("umls")
    run = tmp_path / "killed"
    proc = launch(root, run, "--epochs", "30", "--batch-size", "64", "--eval-every", "1")
    ckpt = run / "checkpoints" / "checkpoint.json"
    deadline = time.monotonic() + 120
    while not ckpt.is_file():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.2)
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True,
                             check=True).stdout.split()
    assert len(workers) == 2
    os.kill(int(max(workers, key=int)), signal.SIGKILL)  # the rank started last
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=120)
    stopped = time.monotonic() - t0
    assert proc.returncode != 0 and stopped < 60, (proc.returncode, stopped)
    lines = [ln for ln in err.splitlines() if ln.startswith("metasd-pyg: error:")]
    if lines:  # rank 0 noticed before the launcher stopped it: one clear line
        assert "another rank stopped" in lines[0] and "--resume" in lines[0], lines
    assert "exitcode  : -9" in err or "SIGKILL" in err or lines, err[-2000:]
    state = json.loads(ckpt.read_text())["state"]
    assert 1 <= state["epoch"] < 30
    code = main(["train", "--out", str(run), "--resume", "--data-root", str(root),
                 "--threads", "1", "--epochs", "8", "--json", "--no-progress"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0 and res["training"]["epochs"] == 8
    assert json.loads((run / "run.json").read_text())["status"] == "complete"


def test_two_nodes_through_a_c10d_rendezvous(tmp_path):
    """The several-machines launch (docs/distributed.md) with two agents on this machine."""
    root = need_data("umls")
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "nodes"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    agents = [subprocess.Popen(
        [str(TORCHRUN), "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
         "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "metasd-test", "--node-rank",
         str(node), str(SCRIPT), "train", "--dataset", "umls", "--data-root", str(root),
         "--out", str(out), *SCHEDULE, "--epochs", "2", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for node in (0, 1)]
    outs = [a.communicate(timeout=300) for a in agents]
    for a, (_, err) in zip(agents, outs):
        assert a.returncode == 0, err[-3000:]
    printed = [o for o, _ in outs if o.strip()]
    assert len(printed) == 1  # rank 0's node reports, the other prints nothing
    res = json.loads(printed[0])
    assert res["training"]["epochs"] == 2 and res["models"]["student"]["test"]["mrr"] > 0


def test_ogb_submit_on_two_ranks(tmp_path):
    """Two seeds of `ogb-submit` data-parallel: rank 0 writes one submission."""
    from metasd_pyg.data import generate_synthetic, write_ogb_wikikg2

    root = tmp_path / "ogb"
    write_ogb_wikikg2(generate_synthetic(300, 6, 4000, seed=1), root, num_candidates=50)
    out = tmp_path / "sub"
    proc = subprocess.run(
        [str(TORCHRUN), "--standalone", "--nproc-per-node", "2", str(SCRIPT), "ogb-submit",
         "--data-root", str(root), "--out", str(out), "--seeds", "2", "--epochs", "2",
         "--dim", "20", "--batch-size", "500", "--no-progress", "--no-report", "--json"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "METASD_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)  # one document: rank 1 printed nothing
    assert [s["seed"] for s in doc["per_seed"]] == [0, 1]
    assert json.loads((out / "submission.json").read_text()) == doc
    assert sorted(p.name for p in out.iterdir()) == ["seed-0", "seed-1", "submission.json",
                                                     "submission.md"]
