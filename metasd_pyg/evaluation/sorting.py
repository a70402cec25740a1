"""Sorting primitives for the evaluator: numpy on CPU, torch elsewhere.

PyTorch's CPU ``sort`` / ``unique`` / ``searchsorted`` run in parallel regions
that cost milliseconds even on small inputs when the cores are shared (and
stable CPU sorts are slow in general); numpy's single-threaded versions are
10-1000x faster there. On other devices the torch versions run unchanged.
Results are identical either way (exact integer / float comparisons).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _cpu(x: Tensor) -> bool:
    return x.device.type == "cpu"


def sort_values(x: Tensor) -> Tensor:
    """Ascending sorted copy of a 1-D tensor.

    Args:
        x: Values (any real dtype).
    """
    if _cpu(x):
        return torch.from_numpy(np.sort(x.numpy()))
    return torch.sort(x).values


def unique_inverse(x: Tensor) -> tuple[Tensor, Tensor]:
    """Sorted distinct values of a 1-D tensor and the index of each element in them.

    Args:
        x: Values (equal values, including ``-0.0`` and ``+0.0``, share an index).
    """
    if _cpu(x):
        u, inv = np.unique(x.numpy(), return_inverse=True)
        return torch.from_numpy(u), torch.from_numpy(inv.reshape(-1).astype(np.int64))
    u_t, inv_t = torch.unique(x, return_inverse=True)
    return u_t, inv_t


def search_sorted(sorted_seq: Tensor, values: Tensor, *, right: bool = False) -> Tensor:
    """Insertion positions (int64) of ``values`` in the ascending 1-D ``sorted_seq``.

    Args:
        sorted_seq: Ascending values.
        values: Values to locate.
        right: Position after equal elements instead of before.
    """
    if _cpu(sorted_seq) and _cpu(values):
        if right:
            pos = np.searchsorted(sorted_seq.numpy(), values.numpy(), side="right")
        else:
            pos = np.searchsorted(sorted_seq.numpy(), values.numpy(), side="left")
        return torch.from_numpy(np.asarray(pos, dtype=np.int64))
    return torch.searchsorted(sorted_seq, values, right=right)


def stable_argsort(x: Tensor) -> Tensor:
    """Indices that sort a 1-D tensor ascending, equal elements in their original order.

    Args:
        x: Values.
    """
    if _cpu(x):
        return torch.from_numpy(np.argsort(x.numpy(), kind="stable").astype(np.int64))
    return torch.argsort(x, stable=True)
