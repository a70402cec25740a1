r"""The pruning sections of a run's configuration: how masks are computed, and when.

:class:`PruningConfig` is the :class:`~metasd_pyg.pruning.Pruner`'s section
(strategy, target sparsity, degree rule, unit order) and :class:`ScheduleConfig`
the :class:`~metasd_pyg.pruning.PruningSchedule`'s (recomputation times, ramp).
Each part is built from its section (``Pruner.from_config``,
``PruningSchedule.from_config``) and reports it back (``.config``). The math of
every strategy is in ``docs/pruning.md``.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from metasd_pyg.pruning.importance import DEFAULT_IMPORTANCE, Importance
from metasd_pyg.sections import Section, check, option

#: Mask strategies of :class:`~metasd_pyg.pruning.Pruner`.
Strategy = Literal["global", "row_topk", "aligned", "degree"]
#: Relation rows of the nested strategies (see :mod:`metasd_pyg.pruning.pruner`).
RelationRule = Literal["max", "full"]

#: Accepted strategies.
STRATEGIES: tuple[str, ...] = typing.get_args(Strategy)
#: Accepted relation rules of the nested strategies.
RELATION_RULES: tuple[str, ...] = typing.get_args(RelationRule)
#: Shapes of the sparsity ramp (:class:`~metasd_pyg.pruning.PruningSchedule`).
Ramp = Literal["cubic", "linear"]
#: Accepted ramp shapes.
RAMPS: tuple[str, ...] = typing.get_args(Ramp)
#: Default cap of the ``degree`` prefixes, as a multiple of the mean prefix
#: length: at rank 100 and 90% sparsity the mean is 10 units and the cap 32, the
#: cap measured best on FB15k-237 and neutral on Kinship/UMLS/WN18RR
#: (``benchmarks/results/quality*.md``).
DEFAULT_K_MAX_FACTOR: float = 3.2

#: Default exponent of the ``degree`` prefixes, ``k_e ~ (d_e + 1)^alpha``: 0.25
#: gives the rarest entities more units than the square root (0.5, the rule of
#: earlier releases) and measured better or level on valid on FB15k-237,
#: WN18RR, Nations and UMLS (Kinship: every prefix is the same either way;
#: ``benchmarks/results/quality_budget.md``, ``quality_tail.md``).
DEFAULT_ALPHA: float = 0.25


@dataclass(frozen=True)
class PruningConfig(Section):
    r"""How the student's masks are computed (the :class:`~metasd_pyg.pruning.Pruner`'s options).

    Args:
        strategy: Mask strategy: global (one magnitude threshold, the paper's),
            row_topk, aligned (whole units for every row) or degree (nested
            prefixes, longer for higher-degree entities).
        sparsity: Target share of pruned weights of the student, in [0, 1).
        alpha: Exponent of the degree-aware budget k_e ~ (d_e + 1)^alpha.
            Lower gives rare entities more units; 0.25 was chosen on valid MRR
            over five graphs, 0.1 is better on FB15k-237 alone (docs/training.md).
        k_min: Minimum kept dimensions per entity row (degree strategy; 0 lets a
            row lose every unit).
        k_max: Maximum kept dimensions per entity row (degree strategy; None =
            k_max_factor decides). With the max relation rule every relation
            row keeps the longest entity prefix, so on graphs with hubs
            (FB15k-237) a cap stops relations from taking a third of the budget.
        k_max_factor: Without k_max, cap the degree prefixes at max(ceil(m),
            floor(f m)) units, m the mean prefix length at the current sparsity
            and f this factor (3.2: 32 of 100 units at 90% sparsity, the cap
            measured best on FB15k-237 and neutral elsewhere); None = no cap.
        relation_rule: How relation rows are masked by nested strategies: max
            (the longest entity prefix) or full (dense); see docs/pruning.md.
        importance: Ranking of embedding dimensions for nested strategies:
            index (a fixed order: masks change only with the sparsity),
            magnitude or product (re-ranked from the current weights at every
            recomputation); see metasd_pyg.pruning.importance.
        random_fraction: Share of the kept budget chosen at random among the
            entries the strategy did not keep (breaks the prefix structure).
        hysteresis: Nested strategies with a weight-based importance (magnitude,
            product): the core units of the previous order (its first
            round((1 - sparsity) d), the mean prefix) keep their place unless
            another unit's importance exceeds theirs by this factor, so re-ranking
            moves only units that clearly matter more; 0 = plain re-ranking.
    """

    #: Runs saved before the cap (hysteresis) existed ran uncapped (without).
    ADDED_LATER: ClassVar[Mapping[str, Any]] = {"k_max_factor": None, "hysteresis": 0.0}

    strategy: Strategy = "degree"
    sparsity: float = 0.9
    alpha: float = DEFAULT_ALPHA
    k_min: int = 1
    k_max: int | None = None
    k_max_factor: float | None = DEFAULT_K_MAX_FACTOR
    relation_rule: RelationRule = "max"
    importance: Importance = DEFAULT_IMPORTANCE
    random_fraction: float = 0.0
    hysteresis: float = 0.0

    def validate(self) -> None:
        check(0.0 <= self.sparsity < 1.0, f"sparsity={self.sparsity}: must be in [0, 1)")
        check(0.0 <= self.hysteresis < math.inf,
              f"hysteresis={self.hysteresis}: must be a finite number >= 0")
        check(math.isfinite(self.alpha), f"alpha={self.alpha}: must be finite")
        check(self.k_min >= 0, f"k_min={self.k_min}: must be >= 0")
        check(self.k_max is None or self.k_max >= max(self.k_min, 1),
              f"k_max={self.k_max}: must be >= max(k_min, 1) = {max(self.k_min, 1)} or None")
        check(self.k_max_factor is None or 1.0 <= self.k_max_factor < math.inf,
              f"k_max_factor={self.k_max_factor}: must be a finite number >= 1 or None")
        check(0.0 <= self.random_fraction <= 1.0,
              f"random_fraction={self.random_fraction}: must be in [0, 1]")


@dataclass(frozen=True)
class ScheduleConfig(Section):
    """When the masks are recomputed (the :class:`~metasd_pyg.pruning.PruningSchedule`'s options).

    Args:
        every_epochs: Recompute masks every this many epochs.
        every_steps: If set, recompute masks every this many steps instead.
        ramp_epochs: Epochs of a gradual ramp from 0 to the target sparsity.
        ramp: Shape of that ramp: cubic (Zhu & Gupta 2017, fast early pruning)
            or linear.
    """

    #: Runs saved before the ramp shape was an option ran the cubic ramp.
    ADDED_LATER: ClassVar[Mapping[str, Any]] = {"ramp": "cubic"}

    every_epochs: int = option(1, key="prune_every_epochs")
    every_steps: int | None = option(None, key="prune_every_steps")
    ramp_epochs: int = 0
    ramp: Ramp = "cubic"

    def validate(self) -> None:
        check(self.every_epochs >= 1, f"prune_every_epochs={self.every_epochs}: must be >= 1")
        check(self.every_steps is None or self.every_steps >= 1,
              f"prune_every_steps={self.every_steps}: must be >= 1 or None")
        check(self.ramp_epochs >= 0, f"ramp_epochs={self.ramp_epochs}: must be >= 0")
