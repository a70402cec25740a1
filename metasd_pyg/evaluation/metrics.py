r"""Ranking metrics: MR, MRR and Hits@k.

For ranks :math:`r_1, \dots, r_n` (filtered or raw, under a tie policy):

.. math::
    \mathrm{MR} = \frac1n \sum_i r_i, \qquad
    \mathrm{MRR} = \frac1n \sum_i \frac1{r_i}, \qquad
    \mathrm{Hits@}k = \frac1n |\{i : r_i \le k\}|.

Realistic ranks can end in ``.5``; Hits@k then compares the fractional rank
with ``k``, as OGB does. These are the metrics of the MetaSD paper (Li et al.,
Findings of EMNLP 2022, https://aclanthology.org/2022.findings-emnlp.149/).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from metasd_pyg.errors import ConfigError

#: Default cut-offs of Hits@k.
DEFAULT_KS: tuple[int, ...] = (1, 3, 10)


def check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """Validate Hits@k cut-offs (positive integers, returned sorted and unique).

    Args:
        ks: The cut-offs.
    """
    out = tuple(sorted({int(k) for k in ks}))
    if not out or out[0] < 1 or any(int(k) != k for k in ks):
        raise ConfigError(f"Hits@k cut-offs must be positive integers, got {list(ks)}")
    return out


def metric_names(ks: Sequence[int]) -> list[str]:
    """Column names of the metrics, in order: ``mrr``, ``mr``, ``hits@k``...

    Args:
        ks: Hits@k cut-offs.
    """
    return ["mrr", "mr", *(f"hits@{k}" for k in ks)]


def rank_metrics(ranks: Tensor | np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """MRR, MR and Hits@k of a vector of ranks (NaN for an empty vector).

    Args:
        ranks: ``[n]`` ranks (1 is best).
        ks: Hits@k cut-offs.

    Returns:
        ``{"mrr": ..., "mr": ..., "hits@k": ..., "num_queries": n}``.
    """
    r = ranks.detach().to("cpu", torch.float64).numpy() if isinstance(ranks, Tensor) else ranks
    r = np.asarray(r, dtype=np.float64)
    n = int(r.size)
    out: dict[str, float] = {}
    if n == 0:
        out.update(dict.fromkeys(metric_names(ks), float("nan")))
    else:
        out["mrr"] = float(np.mean(1.0 / r))
        out["mr"] = float(np.mean(r))
        for k in ks:
            out[f"hits@{k}"] = float(np.mean(r <= k))
    out["num_queries"] = n
    return out
