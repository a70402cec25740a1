r"""The student as a masked view of the teacher's parameters (never a second copy).

With masks :math:`M` (``True`` = kept) the student's tables are
:math:`\theta \odot M`: exact zeros at pruned coordinates, and
:math:`\partial(\theta \odot M)/\partial\theta = \mathrm{diag}(M)`, so a
student loss sends gradient to kept coordinates only. The student is scored
with :mod:`metasd_pyg.models.scoring` through ``weights=``; the same tensors
serve both sides of scoring (queries and candidates), so the student never
ranks against unmasked tables.

**Compact scoring.** A bilinear score (ComplEx, DistMult) is a sum over
coordinates :math:`j` of products that contain a head *and* a tail entity
coordinate, so a column that no entity row keeps contributes exactly zero to
every entity score. :func:`active_units` lists the columns some entity row
keeps and :func:`compact_view` drops the others from every pruned table
(``index_select``, so gradients flow back to the full tables). The logits are
the same as with the full masked tables; only the width of the matrix
products changes. With nested masks capped at ``k_max`` units, or aligned
masks keeping ``k`` units, the student's products are ``k_max / d`` or
``k / d`` of the teacher's. Distance models (TransE, RotatE) are never
compacted: there a relation coordinate counts even where both entities are
zero.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from metasd_pyg.models.adapters import adapter_of
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


def active_units(model: nn.Module, masks: Mapping[str, Tensor]) -> Tensor | None:
    """Sorted indices of the columns kept by at least one entity row (bilinear models).

    Returns ``None`` when compaction does not apply (distance models: the
    adapter's :attr:`~metasd_pyg.models.adapters.ModelAdapter.bilinear` is
    false) or would not drop any column.

    Args:
        model: The PyG KGE model the masks belong to.
        masks: Parameter name -> bool mask (``True`` = kept), as from
            :class:`~metasd_pyg.pruning.Pruner`.

    Raises:
        ConfigError: Unsupported model class.
    """
    adapter = adapter_of(model)
    if not adapter.bilinear:
        return None
    entity = [masks[n] for n in adapter.entity_tables if n in masks]
    if not entity:
        return None
    used = torch.stack([m.any(dim=0) for m in entity]).any(dim=0)
    if bool(used.all()):
        return None
    return used.nonzero().flatten()


def compact_view(
    view: Mapping[str, Tensor], masks: Mapping[str, Tensor], units: Tensor | None
) -> dict[str, Tensor]:
    """The masked tables restricted to the columns ``units`` (see the module docstring).

    Only for scoring entities (logits, ranking); regularisers that penalise a
    relation coordinate on its own (N3) need the full view.

    Args:
        view: Parameter name -> masked tensor (:func:`student_weights`).
        masks: The masks of ``view``; their names are the tables to narrow.
        units: Column indices from :func:`active_units`; ``None`` returns
            ``view`` unchanged.
    """
    if units is None:
        return dict(view)
    return {n: t.index_select(1, units) if n in masks else t for n, t in view.items()}


def leaf_copies(weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Detached copies of ``weights`` that require grad (leaves of the student view).

    Args:
        weights: Parameter name -> tensor.
    """
    return {n: w.detach().clone().requires_grad_(True) for n, w in weights.items()}
