"""Evaluation: filtered ranking, tie policies, long-tail buckets, OGB protocol, comparison.

Entry points: :func:`evaluate` (one call on a model and a split),
:class:`RankingEvaluator` (streaming, for training loops) and :func:`compare`
(paired per-bucket MRR differences with bootstrap confidence intervals).
"""

from metasd_pyg.evaluation.buckets import (
    BUCKET_BY,
    BinScheme,
    bucket_table,
    bucket_values,
    make_scheme,
)
from metasd_pyg.evaluation.chunking import DEFAULT_MEMORY_BUDGET_MB, chunk_size
from metasd_pyg.evaluation.compare import bootstrap_mean_ci, compare
from metasd_pyg.evaluation.evaluate import SIDE_CHOICES, evaluate, subset_indices
from metasd_pyg.evaluation.metrics import DEFAULT_KS, metric_names, rank_metrics
from metasd_pyg.evaluation.ranks import TIE_POLICIES, candidate_ranks, ranks_from_scores
from metasd_pyg.evaluation.result import EvaluationResult
from metasd_pyg.evaluation.streaming import PROTOCOLS, RankingEvaluator, build_result

__all__ = [
    "BUCKET_BY",
    "DEFAULT_KS",
    "DEFAULT_MEMORY_BUDGET_MB",
    "PROTOCOLS",
    "SIDE_CHOICES",
    "TIE_POLICIES",
    "BinScheme",
    "EvaluationResult",
    "RankingEvaluator",
    "bootstrap_mean_ci",
    "bucket_table",
    "bucket_values",
    "build_result",
    "candidate_ranks",
    "chunk_size",
    "compare",
    "evaluate",
    "make_scheme",
    "metric_names",
    "rank_metrics",
    "ranks_from_scores",
    "subset_indices",
]
