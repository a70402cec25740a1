"""JSON summaries of a dataset and of a model's size, stored with a run's results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from metasd_pyg.data.graph import KnowledgeGraph
from metasd_pyg.data.statistics import CATEGORY_NAMES


def dataset_summary(graph: KnowledgeGraph) -> dict[str, Any]:
    """Counts, train statistics and the degree histogram of ``graph``.

    The degree histogram (``degree`` values and the number of entities with
    each) is what the report's log-log degree plot needs, without the dataset.

    Args:
        graph: The knowledge graph.
    """
    stats = graph.stats
    values, counts = torch.unique(stats.degree, return_counts=True)
    return {
        "name": graph.name,
        "source": graph.source,
        "num_entities": graph.num_entities,
        "num_relations": graph.num_relations,
        "train": len(graph.train),
        "valid": len(graph.valid),
        "test": len(graph.test),
        "has_candidates": graph.has_candidates,
        "statistics": stats.summary(),
        "degree_histogram": {"degree": values.tolist(), "count": counts.tolist()},
        "relation_categories": stats.category_names,
        "relation_frequency": stats.relation_frequency.tolist(),
        "category_names": list(CATEGORY_NAMES),
    }


def size_summary(
    params: Mapping[str, Tensor], masks: Mapping[str, Tensor] | None, teacher_params: int
) -> dict[str, Any]:
    """Parameter counts of a model or masked student against the dense teacher.

    Args:
        params: The model's parameters.
        masks: Keep-masks of the student (``None``: dense model).
        teacher_params: Parameters of the dense teacher of the run's configuration.
    """
    total = sum(int(p.numel()) for p in params.values())
    if masks:
        nonzeros = sum(int(masks[n].sum()) if n in masks else int(p.numel())
                       for n, p in params.items())
    else:
        nonzeros = total
    return {
        "params": total,
        "nonzeros": nonzeros,
        "density": nonzeros / max(total, 1),
        "teacher_params": teacher_params,
        "nonzeros_vs_teacher": nonzeros / max(teacher_params, 1),
    }
