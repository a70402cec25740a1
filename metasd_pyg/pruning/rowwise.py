r"""Per-row top-:math:`k` magnitude masks and the split of a budget over tables.

Each pruned table receives its share of the budget (:func:`split_budget`,
largest remainder, so every table is within one weight of
:math:`\rho\,|T|` and the shares add up exactly). Table :math:`T` with
:math:`n_T` kept weights over :math:`r` rows of width :math:`d` keeps
:math:`k = \lfloor n_T / r \rfloor` largest-magnitude entries in every row, and
:math:`k + 1` in the :math:`n_T - k r` rows whose :math:`(k+1)`-th largest
magnitude is largest (ties between rows: lower row index; within a row, ties
are broken by :func:`torch.topk`, deterministic on a given device).
Real and imaginary tables are treated as separate real tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from metasd_pyg.pruning.select import CHUNK_ELEMENTS


def split_budget(n: int, sizes: Sequence[int]) -> list[int]:
    """Split ``n`` over parts proportionally to ``sizes`` by largest remainder.

    Args:
        n: Total to split (``0 <= n <= sum(sizes)``).
        sizes: Part sizes.
    """
    total = sum(sizes)
    if total == 0:
        return [0 for _ in sizes]
    base = [n * s // total for s in sizes]
    rems = [n * s % total for s in sizes]
    left = n - sum(base)
    for i in sorted(range(len(sizes)), key=lambda i: (-rems[i], i))[:left]:
        base[i] += 1
    return base


def _row_steps(table: Tensor, chunk: int) -> range:
    return range(0, table.shape[0], max(1, chunk // max(table.shape[1], 1)))


def row_topk_mask(table: Tensor, n: int, *, chunk: int = CHUNK_ELEMENTS) -> Tensor:
    """Bool mask of ``table`` keeping exactly ``n`` entries, top-k per row.

    Args:
        table: ``[rows, d]`` weights.
        n: Entries to keep (``0 <= n <= rows * d``).
        chunk: Entries per streamed chunk of rows.
    """
    rows, d = table.shape
    if n <= 0 or n >= rows * d:
        return torch.full((rows, d), n > 0, dtype=torch.bool, device=table.device)
    k, rem = divmod(n, rows)
    step = max(1, chunk // max(d, 1))
    krow = torch.full((rows,), k, dtype=torch.long, device=table.device)
    if rem:
        nxt = torch.cat(
            [
                torch.topk(table[s : s + step].detach().abs(), k + 1, dim=1).values[:, k]
                for s in _row_steps(table, chunk)
            ]
        )
        krow[torch.sort(nxt, descending=True, stable=True).indices[:rem]] += 1
    mask = torch.zeros((rows, d), dtype=torch.bool, device=table.device)
    kk = min(k + 1, d)
    pos = torch.arange(kk, device=table.device)
    for s in _row_steps(table, chunk):
        block = table[s : s + step].detach().abs()
        idx = torch.topk(block, kk, dim=1).indices  # sorted, largest first
        mask[s : s + step].scatter_(1, idx, pos[None, :] < krow[s : s + step, None])
    return mask
