"""Entity tables on transparent huge pages: same values, huge pages really used.

Checked by breaking it once (the ``madvise`` call left out): the kernel then
backed the copy with 4 KiB pages and the huge-page tests failed.
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

import pytest
import torch

from metasd_pyg.models.adapters import ENTITY_TABLES
from metasd_pyg.training import Built, compose
from metasd_pyg.training import huge_pages as hp

from .helpers import tiny_evaluate, toy_graph
from .test_engine import _cfg


def _huge_kib(t: torch.Tensor) -> int:
    """AnonHugePages (KiB) of the mappings that overlap ``t``'s bytes (/proc/self/smaps).

    A mapping can hold more than ``t`` (the kernel merges neighbouring ones), so this
    proves huge pages where the advice was given, never their absence elsewhere.
    """
    start = t.data_ptr()
    end = start + t.numel() * t.element_size()
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo < end and start < hi
        elif inside and head == "AnonHugePages:":
            total += int(line.split()[1])
    return total


def _kernel_gives_huge_pages() -> bool:
    """Whether an advised anonymous mapping gets huge pages here (independent of the code
    under test: its own ``mmap`` and ``madvise``)."""
    if not hp.huge_pages_available():
        return False
    area = mmap.mmap(-1, 8 * 2**20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    area.madvise(mmap.MADV_HUGEPAGE)
    probe = torch.frombuffer(area, dtype=torch.uint8)
    probe.fill_(1)
    return _huge_kib(probe) > 0


needs_thp = pytest.mark.skipif(not _kernel_gives_huge_pages(),
                               reason="the kernel gives no transparent huge pages here")


@needs_thp
def test_the_copy_is_backed_by_huge_pages_and_holds_the_same_values() -> None:
    t = torch.randn(50_000, 200)  # 40 MB
    out = hp.huge_page_copy(t)
    assert out.data_ptr() != t.data_ptr()
    assert torch.equal(out, t) and out.dtype == t.dtype and out.shape == t.shape
    assert _huge_kib(out) >= 8 * 2048, _huge_kib(out)


def test_small_non_contiguous_or_unavailable_tensors_stay_where_they_are(
        monkeypatch: Any) -> None:
    small = torch.randn(100, 10)
    assert hp.huge_page_copy(small) is small
    big = torch.randn(200, 50_000)  # 40 MB
    assert hp.huge_page_copy(big.t()).data_ptr() == big.data_ptr()  # not contiguous
    if hp.huge_pages_available():  # on a system without them every tensor stays anyway
        assert hp.huge_page_copy(big) is not big
    monkeypatch.setattr(hp, "huge_pages_available", lambda: False)
    assert hp.huge_page_copy(big) is big


@needs_thp
@pytest.mark.parametrize("mode", ["teacher", "metasd"])
def test_the_trainer_places_row_engine_tables_and_their_state_and_trains_the_same(
        monkeypatch: Any, tmp_path: Path, mode: str) -> None:
    monkeypatch.setattr(hp, "MIN_BYTES", 0)  # the toy tables are tiny: place them anyway
    graph = toy_graph(num_entities=100_000, num_relations=3, n=400)  # 100k x 24: 9.6 MB

    def run(huge: bool, folder: Path | None = None) -> Any:
        cfg = _cfg(mode=mode, dim=24, huge_pages=huge, epochs=1)
        tr = compose(graph, cfg, Built(evaluator=tiny_evaluate, checkpoint_dir=folder))
        tr.start()
        for i in range(4):
            tr.train_step(tr.stream[i * 16:(i + 1) * 16])
        return tr

    plain, placed = run(False), run(True, tmp_path)
    params = dict(placed.model.named_parameters())
    for n in ENTITY_TABLES:
        assert _huge_kib(params[n]) > 0, n
        assert _huge_kib(placed.optimizer.state[params[n]]["sum"]) > 0, n
    for n, p in plain.model.named_parameters():
        assert torch.equal(p, params[n]), n
    placed.save_checkpoint()
    resumed = compose(graph, _cfg(mode=mode, dim=24, epochs=1),
                      Built(evaluator=tiny_evaluate, checkpoint_dir=tmp_path))
    resumed.load_checkpoint()
    again = dict(resumed.model.named_parameters())
    for n in ENTITY_TABLES:
        assert _huge_kib(resumed.optimizer.state[again[n]]["sum"]) > 0, n
        assert torch.equal(again[n], params[n])
