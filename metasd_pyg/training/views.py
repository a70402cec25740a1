r"""The student as a masked view of the teacher's parameters (never a second copy).

With masks :math:`M` (``True`` = kept) the student's tables are
:math:`\theta \odot M`: exact zeros at pruned coordinates, and
:math:`\partial(\theta \odot M)/\partial\theta = \mathrm{diag}(M)`, so a
student loss sends gradient to kept coordinates only. The student is scored
with :mod:`metasd_pyg.models.scoring` through ``weights=``; the same tensors
serve both sides of scoring (queries and candidates), so the student never
ranks against unmasked tables.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from metasd_pyg.pruning import apply_masks


def student_weights(
    weights: Mapping[str, Tensor], masks: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """Masked tables ``where(masks[n], weights[n], 0)`` (unmasked names passed through).

    Thin wrapper of :func:`metasd_pyg.pruning.apply_masks` (kept here so the
    training code has one place that builds student views).

    Args:
        weights: Parameter name -> tensor (the teacher's parameters or leaf copies).
        masks: Parameter name -> bool mask of the same shape.
    """
    return apply_masks(weights, masks)


def leaf_copies(weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Detached copies of ``weights`` that require grad (leaves of the student view).

    Args:
        weights: Parameter name -> tensor.
    """
    return {n: w.detach().clone().requires_grad_(True) for n, w in weights.items()}
