r"""Large tables in memory backed by transparent huge pages (Linux, CPU).

A row-wise step (:mod:`metasd_pyg.training.engine`) reads and writes a few
thousand random rows of each entity table and of its optimiser state. With
ordinary 4 KiB pages every such row of a 1 GB table (ogbl-wikikg2: 2.5M rows
of 100 floats) costs a TLB miss on top of the cache miss; with 2 MiB pages
the whole table needs 512 TLB entries instead of 262,144. Measured in the
trainer at ogbl-wikikg2 size (teacher, ComplEx dim 100, batch 1000, 1,024
negatives, two threads): the optimiser step 3.5 -> 2.9 ms, the whole step
22.1 -> 21.3 ms; ``benchmarks/bench_scale.py --pages huge small`` measures the
two side by side.

Linux backs memory with huge pages only where a process asks for them
(``/sys/kernel/mm/transparent_hugepage/enabled`` is ``madvise`` on most
distributions): :func:`huge_page_copy` maps fresh anonymous memory
(:class:`mmap.mmap`), advises the kernel (``MADV_HUGEPAGE``) before the first
write, then copies the tensor into it, so the pages are huge from the first
fault; the tensor is a view of that mapping (:func:`torch.frombuffer`, which
keeps it alive). The values are the same tensor's; only where they live
changes. PyTorch's own switch (``THP_MEM_ALLOC_ENABLE=1``) does the same for
every large allocation, but it is read once, at the process's first
allocation, so a library cannot set it.
"""

from __future__ import annotations

import mmap
import sys
from pathlib import Path

import torch
from torch import Tensor

#: Tables smaller than this stay where they are (a few huge pages gain nothing
#: measurable and the copy would cost a start-up pass).
MIN_BYTES = 32 * 2**20
_THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def huge_pages_available() -> bool:
    """Whether this process can ask for transparent huge pages (Linux, not ``never``)."""
    if not sys.platform.startswith("linux") or not hasattr(mmap, "MADV_HUGEPAGE"):
        return False
    try:
        return "[never]" not in _THP_SETTING.read_text()
    except OSError:
        return False


def huge_page_copy(tensor: Tensor, min_bytes: int | None = None) -> Tensor:
    """A copy of ``tensor`` in memory advised for transparent huge pages.

    Returns ``tensor`` itself when that cannot help or cannot be done: not on
    the CPU, not contiguous, smaller than ``min_bytes``, or no huge pages on
    this system (:func:`huge_pages_available`). The copy holds the same
    values (bit for bit), dtype and shape.

    Args:
        tensor: The tensor to re-home (a table or its optimiser state).
        min_bytes: Size below which the tensor is returned as it is (default
            :data:`MIN_BYTES`; never below one huge page, 2 MiB).
    """
    nbytes = tensor.numel() * tensor.element_size()
    if (tensor.device.type != "cpu" or not tensor.is_contiguous()
            or nbytes < max(MIN_BYTES if min_bytes is None else min_bytes, 2 * 2**20)
            or not huge_pages_available()):
        return tensor
    area = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        area.madvise(mmap.MADV_HUGEPAGE)
    except OSError:
        area.close()
        return tensor  # the advice was refused: keep the tensor, no copy
    out = torch.frombuffer(area, dtype=tensor.dtype).view(tensor.shape)
    out.copy_(tensor)
    return out
