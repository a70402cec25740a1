"""Pruning masks for compressed KGE students: strategies, schedule, safe modulus.

See ``docs/pruning.md`` for the math of every strategy.
"""

from metasd_pyg.pruning.config import (
    DEFAULT_K_MAX_FACTOR,
    RELATION_RULES,
    STRATEGIES,
    PruningConfig,
    ScheduleConfig,
)
from metasd_pyg.pruning.importance import IMPORTANCES, unit_importance, unit_order
from metasd_pyg.pruning.masks import (
    Masks,
    apply_masks,
    count_nonzero,
    mask_churn,
    mask_density,
    target_count,
)
from metasd_pyg.pruning.modulus import safe_modulus
from metasd_pyg.pruning.nested import NestedMasks, allocate_prefix_lengths
from metasd_pyg.pruning.pruner import NESTED_STRATEGIES, Pruner
from metasd_pyg.pruning.rowwise import row_topk_mask, split_budget
from metasd_pyg.pruning.schedule import RAMPS, PruningSchedule
from metasd_pyg.pruning.select import select_top
from metasd_pyg.pruning.tables import TableLayout, pruned_tables

__all__ = [
    "DEFAULT_K_MAX_FACTOR",
    "IMPORTANCES",
    "NESTED_STRATEGIES",
    "RAMPS",
    "RELATION_RULES",
    "STRATEGIES",
    "Masks",
    "NestedMasks",
    "Pruner",
    "PruningConfig",
    "PruningSchedule",
    "ScheduleConfig",
    "TableLayout",
    "allocate_prefix_lengths",
    "apply_masks",
    "count_nonzero",
    "mask_churn",
    "mask_density",
    "pruned_tables",
    "row_topk_mask",
    "safe_modulus",
    "select_top",
    "split_budget",
    "target_count",
    "unit_importance",
    "unit_order",
]
