r"""The :class:`Pruner`: masks of a PyG KGE model's embedding tables.

Strategies (math in ``docs/pruning.md``), all over the pruned tables of
:func:`~metasd_pyg.pruning.tables.pruned_tables` (every entity and relation
table; RotatE's relation phases are never pruned):

* ``"global"``: one magnitude threshold across all tables, as in MetaSD
  (Li et al. 2022, https://aclanthology.org/2022.findings-emnlp.149/);
  ties are broken by position so the count is exact
  (:func:`~metasd_pyg.pruning.select.select_top`).
* ``"row_topk"``: the largest-magnitude entries of every row
  (:mod:`~metasd_pyg.pruning.rowwise`).
* ``"aligned"``: whole units (embedding dimensions; complex dimensions for
  ComplEx/RotatE) ranked by importance
  (:mod:`~metasd_pyg.pruning.importance`), kept for every entity and relation:
  all rows keep a common prefix of the shared order, and the remainder of the
  budget gives one more unit to some rows (relation rows first, then the rows
  with the most mass on that next unit, unless ``importance="index"``).
* ``"degree"``: nested masks whose prefix length grows with the train degree,
  :math:`k_e \propto (\deg_e + 1)^\alpha` clipped to :math:`[k_\min, k_\max]`
  and rescaled so that the density is the target
  (:mod:`~metasd_pyg.pruning.nested`).

Relation rows of the nested strategies (``relation_rule``): ``"max"``
(default) gives every relation row the prefix length of the largest entity
row, so a relation never cuts off a coordinate an entity keeps (a trilinear
score uses coordinate :math:`j` only if head, relation and tail all keep it),
counted in the budget; ``"full"`` keeps relation rows dense (all :math:`d`
units), also counted.

Optional random component: a share ``random_fraction`` of the kept budget is
drawn uniformly at random (seeded) among the entries the strategy did not keep.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from metasd_pyg.errors import ConfigError
from metasd_pyg.pruning.config import DEFAULT_ALPHA, DEFAULT_K_MAX_FACTOR, PruningConfig
from metasd_pyg.pruning.importance import DEFAULT_IMPORTANCE, unit_importance, unit_order
from metasd_pyg.pruning.masks import Masks, target_count
from metasd_pyg.pruning.nested import NestedMasks, allocate_prefix_lengths
from metasd_pyg.pruning.rowwise import row_topk_mask, split_budget
from metasd_pyg.pruning.select import random_score, select_top
from metasd_pyg.pruning.tables import TableLayout, layout_weights, pruned_tables

#: Strategies whose masks are nested prefixes of one shared unit order.
NESTED_STRATEGIES: tuple[str, ...] = ("aligned", "degree")


class Pruner:
    r"""Computes pruning masks from a model's current weights.

    Args:
        strategy: One of :data:`~metasd_pyg.pruning.config.STRATEGIES`.
        sparsity: Target share of pruned weights over all pruned tables, in
            ``[0, 1)``; the number of kept weights is
            :func:`~metasd_pyg.pruning.masks.target_count` of the total
            (exact for ``global`` and ``row_topk``; within one weight for the
            nested strategies of ComplEx/RotatE, whose units are two reals).
        alpha: Exponent of the degree rule :math:`k_e \propto (\deg_e+1)^\alpha`
            (``degree`` only; ``alpha > 0`` gives high-degree entities more units).
        k_min: Smallest prefix length of a row (``degree`` only).
        k_max: Largest prefix length (``degree`` only). If set, it wins over
            ``k_max_factor``.
        k_max_factor: Without ``k_max``, cap the prefixes of ``degree`` at
            :math:`\max(\lceil m \rceil, \lfloor f\, m \rfloor)` units (clipped to
            ``[k_min, d]``), :math:`m` the mean prefix length of the rows
            sharing the budget at the current sparsity and :math:`f` this
            factor (>= 1). ``None`` and no ``k_max``: no cap (``d``). Without a
            cap, hub entities take all ``d`` units and, with the ``"max"``
            relation rule, so does every relation row (``docs/pruning.md``).
        random_fraction: Share of the kept budget drawn uniformly at random
            among the remaining entries (breaks the prefix structure).
        importance: Unit importance of the nested strategies, one of
            :data:`~metasd_pyg.pruning.importance.IMPORTANCES`.
        relation_rule: Relation rows of the nested strategies, one of
            :data:`~metasd_pyg.pruning.config.RELATION_RULES` (see the module docstring).
        hysteresis: Keep the previous order's core units in place unless another
            unit is this factor more important (weight-based importances only).
        seed: Seed of the random component.
    """

    def __init__(
        self,
        strategy: str = "degree",
        sparsity: float = 0.9,
        *,
        alpha: float = DEFAULT_ALPHA,
        k_min: int = 1,
        k_max: int | None = None,
        k_max_factor: float | None = DEFAULT_K_MAX_FACTOR,
        random_fraction: float = 0.0,
        importance: str = DEFAULT_IMPORTANCE,
        relation_rule: str = "max",
        hysteresis: float = 0.0,
        seed: int = 0,
    ) -> None:
        config = PruningConfig(
            strategy=strategy, sparsity=float(sparsity), alpha=float(alpha),  # type: ignore[arg-type]
            k_min=int(k_min), k_max=k_max,
            k_max_factor=None if k_max_factor is None else float(k_max_factor),
            relation_rule=relation_rule, importance=importance,  # type: ignore[arg-type]
            random_fraction=float(random_fraction), hysteresis=float(hysteresis))
        self._config = config
        self.strategy = config.strategy
        self.sparsity = config.sparsity
        self.alpha = config.alpha
        self.k_min = config.k_min
        self.k_max = config.k_max
        self.k_max_factor = config.k_max_factor
        self.random_fraction = config.random_fraction
        self.importance = config.importance
        self.relation_rule = config.relation_rule
        self.hysteresis = config.hysteresis
        self.seed = int(seed)
        #: Unit order of the previous nested computation (what ``hysteresis`` keeps
        #: in place); checkpointed by :class:`~metasd_pyg.training.DynamicPruning`.
        self.prior_order: Tensor | None = None
        #: Nested structure of the last :meth:`compute` of a nested strategy
        #: without random component (else ``None``).
        self.last_nested: NestedMasks | None = None

    @classmethod
    def from_config(cls, config: PruningConfig, *, seed: int = 0) -> Pruner:
        """The pruner of a :class:`~metasd_pyg.pruning.config.PruningConfig` section.

        Args:
            config: The section.
            seed: Seed of the random component (the run's seed).
        """
        return cls(**{o.name: getattr(config, o.name) for o in config.options()}, seed=seed)

    @property
    def config(self) -> PruningConfig:
        """The section this pruner computes masks with."""
        return self._config

    def state_dict(self) -> dict[str, Tensor]:
        """What later computations depend on (the previous unit order), for checkpoints."""
        return {} if self.prior_order is None else {"prior_order": self.prior_order}

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Restore :meth:`state_dict`.

        Args:
            state: Name -> tensor.
        """
        order = state.get("prior_order")
        self.prior_order = None if order is None else order.detach().cpu().long()

    def __repr__(self) -> str:
        return (
            f"Pruner(strategy={self.strategy!r}, sparsity={self.sparsity}, alpha={self.alpha}, "
            f"k_min={self.k_min}, k_max={self.k_max}, k_max_factor={self.k_max_factor}, "
            f"random_fraction={self.random_fraction}, "
            f"importance={self.importance!r}, relation_rule={self.relation_rule!r}, "
            f"seed={self.seed})"
        )

    @property
    def nested(self) -> bool:
        """Whether the strategy yields nested prefix masks."""
        return self.strategy in NESTED_STRATEGIES and self.random_fraction == 0.0

    @property
    def last_order(self) -> Tensor | None:
        """``[d]`` shared unit order of the last nested computation."""
        return None if self.last_nested is None else self.last_nested.order

    @property
    def last_k(self) -> dict[str, Tensor] | None:
        """Group -> ``[rows]`` prefix lengths of the last nested computation."""
        return None if self.last_nested is None else self.last_nested.k

    @torch.no_grad()
    def compute(
        self,
        model: nn.Module,
        degree: Tensor | None = None,
        sparsity: float | None = None,
        *,
        weights: Mapping[str, Tensor] | None = None,
    ) -> Masks:
        """Masks of the pruned tables of ``model`` (bool, True = kept).

        Args:
            model: A PyG KGE model.
            degree: ``[E]`` train degree of every entity (required by ``degree``).
            sparsity: Overrides the target sparsity (e.g. from a
                :class:`~metasd_pyg.pruning.schedule.PruningSchedule` ramp).
            weights: Parameters to prune instead of the model's own.
        """
        s = self.sparsity if sparsity is None else _check_sparsity(sparsity)
        layout = pruned_tables(model, weights)
        tables = layout_weights(model, layout, weights)
        names = list(layout.names)
        n = target_count(layout.total, 1.0 - s)
        n_struct = n - target_count(n, self.random_fraction)
        self.last_nested = None
        if self.strategy == "global":
            masks = dict(zip(names, select_top([tables[k] for k in names], n_struct)))
        elif self.strategy == "row_topk":
            shares = split_budget(n_struct, [tables[k].numel() for k in names])
            masks = {k: row_topk_mask(tables[k], c) for k, c in zip(names, shares)}
        else:
            nested = self._nested(layout, tables, degree, n_struct, s)
            masks = nested.to_masks()
            if self.random_fraction == 0.0:
                self.last_nested = nested
        missing = n - sum(int(m.count_nonzero()) for m in masks.values())
        if self.random_fraction > 0.0 and missing > 0:
            exclude = [masks[k] for k in names]
            extra = select_top(
                [tables[k] for k in names], missing, random_score(self.seed, exclude)
            )
            masks = {k: masks[k] | e for k, e in zip(names, extra)}
        return masks

    def compute_nested(
        self,
        model: nn.Module,
        degree: Tensor | None = None,
        sparsity: float | None = None,
        *,
        weights: Mapping[str, Tensor] | None = None,
    ) -> NestedMasks:
        """The nested structure (shared order, prefix lengths) of a nested strategy.

        Same arguments as :meth:`compute`; ``NestedMasks.to_masks()`` equals
        :meth:`compute`'s result. Raises :class:`ConfigError` for non-nested
        strategies and when ``random_fraction > 0``.

        Args:
            model: A PyG KGE model.
            degree: ``[E]`` train degree (required by ``degree``).
            sparsity: Overrides the target sparsity.
            weights: Parameters to prune instead of the model's own.
        """
        if not self.nested:
            raise ConfigError(
                f"strategy {self.strategy!r} with random_fraction={self.random_fraction} "
                "does not give nested masks (use 'aligned' or 'degree' with random_fraction=0)"
            )
        self.compute(model, degree, sparsity, weights=weights)
        assert self.last_nested is not None
        return self.last_nested

    def _factor_cap(self, budget: int, rows: int) -> int:
        """``max(ceil(m), floor(f m))`` with ``m = budget / rows`` (exact in integers)."""
        assert self.k_max_factor is not None
        mean_ceil = -(-budget // rows)
        # round first so that e.g. 3.2 * 10 is 32, not 32.000000000000004 or 31.99...
        return max(mean_ceil, math.floor(round(self.k_max_factor * budget / rows, 9)))

    def _nested(
        self,
        layout: TableLayout,
        tables: Mapping[str, Tensor],
        degree: Tensor | None,
        n: int,
        sparsity: float,
    ) -> NestedMasks:
        d, E, R = layout.dim, layout.rows["entity"], layout.rows["relation"]
        c, c_rel = layout.cost("entity"), layout.cost("relation")
        if c_rel not in (0, c):
            raise TypeError(f"relation tables ({c_rel}) must match entity tables ({c})")
        device = tables[layout.groups["entity"][0]].device
        budget = n // c
        alloc_rel = R if c_rel and self.relation_rule == "max" else 0
        fixed = R * d if c_rel and self.relation_rule == "full" else 0
        budget -= fixed
        rows = E + alloc_rel
        if self.strategy == "degree":
            k_min, k_max = self.k_min, d if self.k_max is None else self.k_max
            if k_min > d or k_max > d:
                raise ConfigError(f"k_min={k_min} and k_max={k_max} must be <= dimension {d}")
            if self.k_max is None and self.k_max_factor is not None and rows and budget > 0:
                k_max = min(d, max(k_min, self._factor_cap(budget, rows)))
            deg = _check_degree(degree, E).to(device, torch.float64)
            value = (deg + 1.0) ** self.alpha
            if not bool(torch.isfinite(value).all()) or bool((value <= 0).any()):
                raise ConfigError(f"alpha={self.alpha} gives non-finite (degree+1)^alpha")
        else:
            k_min, k_max = 0, d
            deg = torch.zeros(E, dtype=torch.float64, device=device)
            value = torch.ones(E, dtype=torch.float64, device=device)
        importance = unit_importance(layout, tables, self.importance)
        prior = self.prior_order
        if self.hysteresis > 0 and self.importance != "index" and prior is not None \
                and prior.numel() == d:
            core = prior[: max(1, round((1.0 - sparsity) * d))].to(importance.device)
            importance = importance.clone()
            importance[core] *= 1.0 + self.hysteresis
        order = unit_order(importance)
        self.prior_order = order.detach().cpu()
        if not rows * k_min <= budget <= rows * k_max:
            lo = c * (rows * k_min + fixed) / layout.total
            hi = c * (rows * k_max + fixed) / layout.total
            raise ConfigError(
                f"sparsity {sparsity:g} is not reachable by strategy {self.strategy!r} "
                f"(k_min={k_min}, k_max={k_max}, relation_rule={self.relation_rule!r}): "
                f"sparsity must be in [{1 - hi:.6g}, {1 - lo:.6g}]"
            )
        v_rows = torch.cat([value, value.max().expand(alloc_rel)]) if alloc_rel else value
        # ties of equal value (e.g. alpha ~ 0) still favour higher degree for alpha > 0
        deg_key = -(1.0 if self.alpha >= 0 else -1.0) * torch.cat([deg, deg.new_zeros(alloc_rel)])
        relation_first = torch.cat(
            [torch.ones(E, device=device), torch.zeros(alloc_rel, device=device)]
        )
        names_ent = layout.groups["entity"]
        names_rel = layout.groups["relation"]

        def next_mass(k: Tensor) -> Tensor:
            col = order[k.clamp(max=d - 1)]
            parts = []
            for grp, lo, hi in ((names_ent, 0, E), (names_rel, E, rows)):
                if hi > lo:
                    vals = [tables[nm].gather(1, col[lo:hi, None]).squeeze(1) for nm in grp]
                    parts.append(torch.stack(vals).double().pow(2).sum(0))
            return torch.cat(parts)

        def tie_keys(k: Tensor) -> list[Tensor]:
            if self.importance == "index":  # masks independent of the weights
                return [relation_first, -v_rows, deg_key]
            return [relation_first, -v_rows, deg_key, -next_mass(k)]

        k = allocate_prefix_lengths(v_rows, budget, k_min=k_min, k_max=k_max, tie_keys=tie_keys)
        ks = {"entity": k[:E]}
        if c_rel:
            ks["relation"] = k[E:] if alloc_rel else torch.full((R,), d, device=device).long()
        groups = {g: layout.groups[g] for g in ks}
        return NestedMasks(order=order, k=ks, tables=groups)


def _check_sparsity(sparsity: float) -> float:
    if not 0.0 <= float(sparsity) <= 1.0:
        raise ConfigError(f"sparsity must be in [0, 1], got {sparsity}")
    return float(sparsity)


def _check_degree(degree: Tensor | None, num_entities: int) -> Tensor:
    if degree is None:
        raise ConfigError("pruning strategy 'degree' needs the train degree of every entity")
    if degree.shape != (num_entities,):
        raise ConfigError(
            f"degree has shape {tuple(degree.shape)}, expected ({num_entities},) for the entities"
        )
    if bool((degree < 0).any()):
        raise ConfigError("degree must be non-negative")
    return degree
