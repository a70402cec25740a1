r"""Boolean pruning masks and the operations on them.

A :data:`Masks` is a ``dict`` parameter name -> bool tensor of that
parameter's shape, ``True`` = kept. The pruned student of MetaSD (Li et al.
2022, https://aclanthology.org/2022.findings-emnlp.149/) is the teacher's
parameters seen through the masks:

.. math::
    \tilde w = m \odot w, \qquad
    \frac{\partial \tilde w}{\partial w} = m .

**Gradients of pruned weights.** :func:`apply_masks` uses
``torch.where(mask, w, 0)``: the masked tensor is exactly zero where the mask
is false (never a tiny factor such as ``1e-8``, whose denormal products slow
CPUs down 50-100x), and any loss computed on the masked view sends an
**exactly zero** gradient to pruned weights (even if they are ``inf`` or
``nan``). Pruned weights still receive gradients from losses computed on the
dense (teacher) view of the same parameters, so a weight can come back when
the masks are recomputed (dynamic pruning).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

#: Parameter name -> bool mask of the parameter's shape (True = kept).
Masks = dict[str, Tensor]


def target_count(total: int, density: float) -> int:
    r"""Number of kept weights for a density: :math:`\lfloor \rho N + 1/2 \rfloor`.

    Args:
        total: Number of prunable weights :math:`N`.
        density: Target share of kept weights :math:`\rho = 1 - \text{sparsity}`.
    """
    return min(total, max(0, math.floor(density * total + 0.5)))


def apply_masks(weights: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The masked view ``where(mask, w, 0)`` of ``weights``.

    Differentiable in ``w``; pruned entries are exact zeros with exactly zero
    gradient (see the module docstring). Parameters without a mask are passed
    through unchanged (same tensor object); masks of names absent from
    ``weights`` are ignored.

    Args:
        weights: Parameter name -> tensor (e.g. ``dict(model.named_parameters())``).
        masks: Parameter name -> bool mask of the same shape.
    """
    out: dict[str, Tensor] = {}
    for name, w in weights.items():
        m = masks.get(name)
        if m is None:
            out[name] = w
            continue
        if m.shape != w.shape:
            raise ValueError(
                f"mask of {name!r} has shape {tuple(m.shape)}, weight {tuple(w.shape)}"
            )
        out[name] = torch.where(m.to(device=w.device, dtype=torch.bool), w, w.new_zeros(()))
    return out


def mask_density(masks: Mapping[str, Tensor]) -> float:
    """Share of kept entries over all masks (1.0 for no masks).

    Args:
        masks: Parameter name -> bool mask.
    """
    total = sum(m.numel() for m in masks.values())
    if total == 0:
        return 1.0
    kept = sum(int(m.count_nonzero()) for m in masks.values())
    return kept / total


def mask_churn(old: Mapping[str, Tensor], new: Mapping[str, Tensor]) -> float:
    """Share of mask entries that changed between two mask sets.

    Args:
        old: Previous masks.
        new: New masks, with the same names and shapes.
    """
    if set(old) != set(new):
        raise ValueError(f"mask names differ: {sorted(set(old) ^ set(new))}")
    total = 0
    changed = 0
    for name, a in old.items():
        b = new[name]
        if a.shape != b.shape:
            raise ValueError(f"mask {name!r} changed shape {tuple(a.shape)} -> {tuple(b.shape)}")
        total += a.numel()
        changed += int((a != b.to(a.device)).count_nonzero())
    return changed / total if total else 0.0


def count_nonzero(weights: Mapping[str, Tensor] | Tensor) -> int:
    """Number of non-zero entries of a tensor or of all tensors of a mapping.

    Args:
        weights: A tensor or parameter name -> tensor.
    """
    if isinstance(weights, Tensor):
        return int(weights.count_nonzero())
    return sum(int(w.count_nonzero()) for w in weights.values())
