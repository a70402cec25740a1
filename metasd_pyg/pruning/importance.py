r"""Importance of embedding dimensions (units) and the shared dimension order.

A *unit* is column :math:`j` of every pruned table of a group; for ComplEx and
RotatE it is a complex dimension (the real and the imaginary coordinate
together). The column mass of group :math:`g` is

.. math::
    M_g(j) = \sum_{T \in g} \sum_i T_{ij}^2

(for ComplEx, :math:`\sum_e |e_j|^2` over complex coordinates). Importances:

* ``"magnitude"``: :math:`I(j) = M_\text{entity}(j) + M_\text{relation}(j)`,
  the squared-norm mass of the column across entity and relation tables;
* ``"product"``: :math:`I(j) = M_\text{entity}(j)\, M_\text{relation}(j)`, a proxy of
  the column's share of trilinear scores :math:`\sum_j h_j r_j \bar t_j`
  (it is :math:`M_\text{entity}` when no relation table is pruned, RotatE);
* ``"index"`` (the :class:`~metasd_pyg.pruning.Pruner` default): :math:`I(j) = -j`,
  the fixed order ``0, 1, ..., d-1``,
  independent of the weights. Nested masks then never re-rank units: a row's
  kept units change only when its prefix length does (a sparsity ramp). With
  i.i.d. initialisations any fixed order is as good as another; a re-ranked
  order moves the few units of low-degree rows onto coordinates the student
  never trained (measured on WN18RR, ``docs/pruning.md``).

The shared order lists units by decreasing importance (ties: lower index
first).
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Literal

import torch
from torch import Tensor

from metasd_pyg.pruning.select import CHUNK_ELEMENTS
from metasd_pyg.pruning.tables import TableLayout

#: Unit importances of the nested strategies.
Importance = Literal["magnitude", "product", "index"]
#: Accepted values of ``importance``.
IMPORTANCES: tuple[str, ...] = typing.get_args(Importance)
#: Default importance of :class:`~metasd_pyg.pruning.Pruner` and the training config.
DEFAULT_IMPORTANCE: Importance = "index"


def column_mass(table: Tensor, *, chunk: int = CHUNK_ELEMENTS) -> Tensor:
    """``[d]`` float64 sums of squares of the columns, streamed over row chunks.

    Args:
        table: ``[rows, d]`` tensor.
        chunk: Entries per streamed chunk (bounds the temporary memory).
    """
    rows, d = table.shape
    step = max(1, chunk // max(d, 1))
    out = torch.zeros(d, dtype=torch.float64, device=table.device)
    for start in range(0, rows, step):
        part = table[start : start + step].detach().to(torch.float64)
        out += (part * part).sum(0)
    return out


def unit_importance(
    layout: TableLayout, tables: Mapping[str, Tensor], importance: str = "magnitude"
) -> Tensor:
    """``[d]`` float64 importance of every unit (see the module docstring).

    Args:
        layout: The pruned tables (:func:`~metasd_pyg.pruning.tables.pruned_tables`).
        tables: Parameter name -> tensor of the pruned tables.
        importance: One of :data:`IMPORTANCES`.
    """
    if importance not in IMPORTANCES:
        raise ValueError(f"unknown importance {importance!r}")
    if importance == "index":
        device = tables[layout.groups["entity"][0]].device
        return -torch.arange(layout.dim, dtype=torch.float64, device=device)
    mass: dict[str, Tensor] = {}
    for group, names in layout.groups.items():
        if names:
            mass[group] = torch.stack([column_mass(tables[n]) for n in names]).sum(0)
    ent = mass["entity"]
    rel = mass.get("relation")
    if rel is None:
        return ent
    return ent + rel if importance == "magnitude" else ent * rel


def unit_order(importance: Tensor) -> Tensor:
    """``[d]`` LongTensor: units by decreasing importance, ties by lower index.

    Args:
        importance: ``[d]`` importance of each unit.
    """
    return torch.sort(importance, descending=True, stable=True).indices
