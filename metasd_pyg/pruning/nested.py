r"""Nested (prefix) masks: one shared dimension order, a prefix length per row.

A nested mask set is a permutation ``order`` of the ``d`` units (embedding
dimensions; complex dimensions for ComplEx/RotatE) shared by all rows, and a
prefix length :math:`k_i` per row: row :math:`i` keeps units
``order[:k_i]`` and nothing else. Two rows :math:`a, b` therefore share their
first :math:`\min(k_a, k_b)` units, which is what a trilinear score
:math:`\sum_j h_j r_j \bar t_j` needs: coordinate :math:`j` only counts if head,
relation and tail all keep it (with independent masks of density 0.1 that
happens on about :math:`0.1^3` of the coordinates).

**Prefix lengths.** Every row has a positive value :math:`v_i` and gets

.. math::
    k_i(s) = \operatorname{clip}(\lfloor s\, v_i \rfloor, k_\min, k_\max),

with one scale :math:`s` for all rows. The total :math:`T(s) = \sum_i k_i(s)`
is a non-decreasing step function; bisection finds the largest :math:`s^*` with
:math:`T(s^*) \le B` (the unit budget), and the remaining
:math:`B - T(s^*)` units go, one each, to the rows whose next step
:math:`(k_i + 1) / v_i` comes first (the rows that would grow next if
:math:`s` increased); ties go to relation rows first, then to larger
:math:`v_i`, then to rows whose next unit carries more mass
(:math:`\sum_T T_{i,\mathrm{order}[k_i]}^2`), then to lower row index. The total is
exactly :math:`B`, and :math:`v_a > v_b \Rightarrow k_a \ge k_b` (the next step
of :math:`a` is earlier whenever :math:`k_a = k_b`).

**Storage without column indices.** Export stores ``order`` once and, per
table, the values of each row's first :math:`k_i` units *in ``order`` order*,
rows concatenated (:meth:`NestedMasks.pack`), with the row offsets
``cumsum(k)`` (:meth:`NestedMasks.offsets`); :meth:`NestedMasks.unpack`
restores the dense tables. No per-entry column index is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from metasd_pyg.pruning.masks import Masks
from metasd_pyg.pruning.select import CHUNK_ELEMENTS

TieKeys = Callable[[Tensor], list[Tensor]]


def _lexsort(keys: list[Tensor]) -> Tensor:
    """Indices sorting rows by ``keys`` (most significant first, ascending, stable)."""
    idx = torch.arange(keys[0].numel(), device=keys[0].device)
    for key in reversed(keys):
        idx = idx[torch.sort(key[idx], stable=True).indices]
    return idx


def allocate_prefix_lengths(
    value: Tensor,
    budget: int,
    *,
    k_min: int,
    k_max: int,
    tie_keys: TieKeys | None = None,
    iterations: int = 200,
) -> Tensor:
    """Integer prefix lengths ``k`` with ``sum(k) == budget`` (see the module docstring).

    Args:
        value: ``[rows]`` positive finite row values :math:`v_i`.
        budget: Units to distribute, in ``[rows * k_min, rows * k_max]``.
        k_min: Lower clip of every row.
        k_max: Upper clip of every row.
        tie_keys: Given the pre-remainder lengths, extra ascending sort keys
            (most significant first) that order rows with the same next step.
        iterations: Maximum bisection steps on the scale.
    """
    rows = value.numel()
    if not rows * k_min <= budget <= rows * k_max:
        raise ValueError(f"budget {budget} outside [{rows * k_min}, {rows * k_max}]")
    v = value.to(torch.float64)
    if rows == 0 or budget == rows * k_max:
        return torch.full((rows,), k_max, dtype=torch.long, device=value.device)

    def lengths(s: float) -> Tensor:
        return torch.floor(v * s).clamp(k_min, k_max).long()

    lo, hi = 0.0, (k_max + 1.0) / float(v.min())
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if not lo < mid < hi:
            break
        if int(lengths(mid).sum()) <= budget:
            lo = mid
        else:
            hi = mid
    k = lengths(lo)
    rem = budget - int(k.sum())
    while rem > 0:  # one round in practice; more only if bisection stalled
        eligible = k < k_max
        nxt = torch.where(eligible, (k + 1).to(torch.float64) / v, torch.inf)
        extra = list(tie_keys(k)) if tie_keys is not None else []
        chosen = _lexsort([nxt, *extra])[: min(rem, int(eligible.sum()))]
        k[chosen] += 1
        rem -= chosen.numel()
    return k


@dataclass
class NestedMasks:
    """Prefix masks: a shared unit order and per-row prefix lengths.

    Attributes:
        order: ``[d]`` LongTensor, the shared unit order (a permutation).
        k: Group (``"entity"``, ``"relation"``) -> ``[rows]`` LongTensor of
            prefix lengths. A group without pruned tables (RotatE relations)
            is absent.
        tables: Group -> parameter names of its tables (all share the group's
            prefix lengths; for ComplEx the real and imaginary tables).
    """

    order: Tensor
    k: dict[str, Tensor]
    tables: dict[str, tuple[str, ...]]

    @property
    def dim(self) -> int:
        """Number of units ``d``."""
        return int(self.order.numel())

    def rank(self) -> Tensor:
        """``[d]`` position of each unit (column) in :attr:`order`."""
        r = torch.empty_like(self.order)
        r[self.order] = torch.arange(self.dim, device=self.order.device)
        return r

    def count(self) -> int:
        """Number of kept weights over all tables."""
        return sum(int(k.sum()) * len(self.tables[g]) for g, k in self.k.items())

    def total(self) -> int:
        """Number of weights of the pruned tables."""
        return sum(k.numel() * self.dim * len(self.tables[g]) for g, k in self.k.items())

    def density(self) -> float:
        """Share of kept weights."""
        t = self.total()
        return self.count() / t if t else 1.0

    def to_masks(self) -> Masks:
        """The bool masks: ``mask[i, order[p]] = p < k[i]``."""
        rank = self.rank()
        out: Masks = {}
        for group, k in self.k.items():
            mask = rank[None, :] < k[:, None]
            for j, name in enumerate(self.tables[group]):
                out[name] = mask if j == 0 else mask.clone()
        return out

    def row_masks(self, rows: Tensor, entity_tables: tuple[str, ...]) -> Masks:
        """The masks of rows ``rows`` of the entity tables (other tables whole).

        Row ``i`` keeps ``order[:k[i]]``: one comparison of the unit ranks
        with the gathered prefix lengths, ``O(len(rows) * d)``; equal to
        ``to_masks()[name][rows]`` without building the full masks.

        Args:
            rows: ``[U]`` entity ids.
            entity_tables: Names of the tables indexed by entity.
        """
        rank = self.rank()
        out: Masks = {}
        for group, k in self.k.items():
            names = self.tables[group]
            if any(n in entity_tables for n in names):
                k = k.index_select(0, rows)
            mask = rank[None, :] < k[:, None]
            for name in names:
                out[name] = mask
        return out

    def offsets(self, group: str) -> Tensor:
        """``[rows + 1]`` start of each row's values in the packed arrays."""
        k = self.k[group]
        return torch.cat([k.new_zeros(1), k.cumsum(0)])

    def pack(self, weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Per table, the kept values row by row in ``order`` order (1-D).

        Row ``i`` of table ``T`` occupies ``values[offsets[i]:offsets[i+1]]``
        and holds ``T[i, order[:k[i]]]``.

        Args:
            weights: Parameter name -> dense table (masked or not).
        """
        out = {}
        for group, k in self.k.items():
            for name in self.tables[group]:
                table = weights[name]
                step = max(1, CHUNK_ELEMENTS // max(self.dim, 1))
                pos = torch.arange(self.dim, device=table.device)
                parts = []
                for start in range(0, table.shape[0], step):
                    block = table[start : start + step].detach()[:, self.order]
                    parts.append(block[pos[None, :] < k[start : start + step, None]])
                out[name] = torch.cat(parts) if parts else table.new_zeros(0)
        return out

    def unpack(self, packed: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Dense ``[rows, d]`` tables (zeros outside the prefixes) from :meth:`pack`.

        Args:
            packed: Parameter name -> 1-D values as returned by :meth:`pack`.
        """
        out = {}
        for group, k in self.k.items():
            pos = torch.arange(self.dim, device=k.device)
            keep = pos[None, :] < k[:, None]
            for name in self.tables[group]:
                values = packed[name]
                sorted_block = values.new_zeros(k.numel(), self.dim)
                sorted_block[keep] = values
                dense = torch.empty_like(sorted_block)
                dense[:, self.order] = sorted_block
                out[name] = dense
        return out
