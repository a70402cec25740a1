"""One writer per run folder (storage.lock): refused with the holder, stale locks taken over.

Checked by removing the lock from the pipeline once: the second process deleted the first
one's folder with --overwrite and the test failed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metasd_pyg.errors import RunFolderError
from metasd_pyg.storage.lock import RunLock, lock_path
from tests.paths import need_archive

SCRIPT = Path(sys.executable).parent / "metasd-pyg"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_held_lock_refuses_a_second_holder_and_a_dead_one_is_taken_over(tmp_path):
    run = tmp_path / "run"
    with RunLock(run) as first:
        assert first.path == lock_path(run) and first.path.parent == tmp_path
        assert first.holder()["pid"] == os.getpid()
        with pytest.raises(RunFolderError, match=rf"in use by another run: pid {os.getpid()} "
                                                 r"on this host \(training, since "):
            RunLock(run).acquire()
    assert not lock_path(run).exists()  # released
    lock_path(run).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    with RunLock(run) as again:  # stale: its holder is gone
        assert again.holder()["pid"] == os.getpid()
    lock_path(run).write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(RunFolderError, match=r"pid 1 on host elsewhere .*remove .*\.run\.lock"):
        RunLock(run).acquire()
    lock_path(run).write_text("{garbage")
    with pytest.raises(RunFolderError, match="unreadable"):
        RunLock(run).acquire()


@pytest.mark.skipif(not SCRIPT.is_file(), reason="the metasd-pyg script is not installed")
def test_two_processes_on_one_run_folder(tmp_path):
    root = need_archive("umls.tar.gz")
    run = tmp_path / "run"
    base = [str(SCRIPT), "train", "--dataset", "umls", "--data-root", str(root), "--out",
            str(run), "--dim", "16", "--no-progress", "--no-report", "--threads", "1"]
    first = subprocess.Popen([*base, "--epochs", "300", "--batch-size", "64"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "checkpoint.json").is_file():
        assert first.poll() is None, first.communicate()[1][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    second = subprocess.run([*base, "--overwrite", "--epochs", "1"], capture_output=True,
                            text=True, timeout=120)
    lines = second.stderr.strip().splitlines()
    assert second.returncode == 1 and len(lines) == 1, second.stderr
    assert f"in use by another run: pid {first.pid} on this host" in lines[0]
    assert (run / "run.json").is_file() and first.poll() is None  # untouched, still running
    first.send_signal(signal.SIGKILL)
    first.wait()
    third = subprocess.run([*base, "--resume", "--epochs", "3", "--batch-size", "64"],
                           capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr[-2000:]  # the dead holder's lock is stale
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    assert not lock_path(run).exists()
