"""Sizes that would need terabytes end in one line with the estimate and the limit, before
anything large is allocated (checked by removing the memory check once: the disk check
caught the 1e9-wide model next, and the test failed on its message)."""

from __future__ import annotations

import time

import pytest

from tests.cli.conftest import run_cli
from tests.paths import need_archive


@pytest.mark.parametrize("flags, item", [
    (["--dim", "1000000000"], "model (float32)"),
    (["--eval-batch-size", "1000000000000"], "for validation"),
    (["--dataset", "synthetic:entities=1000000000000,triples=2000"], "to generate"),
])
def test_terabyte_sizes_are_refused_before_allocating(tmp_path, capsys, flags, item):
    root = need_archive("umls.tar.gz")
    args = ["train", "--dataset", "umls", "--data-root", root, "--out", tmp_path / "run",
            "--epochs", "1", "--no-progress"]
    t = time.perf_counter()
    code, _, err = run_cli(capsys, *args, *flags)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert item in lines[0] and "GB" in lines[0], lines[0]
    assert ("exceeds the memory limit" in lines[0]) or ("this machine has" in lines[0])
    assert time.perf_counter() - t < 30 and not (tmp_path / "run").exists()
