"""Data layer: one entry point over PyG, OGB, text folders and the synthetic generator."""

from metasd_pyg.data.graph import SPLITS, KnowledgeGraph
from metasd_pyg.data.statistics import CATEGORY_NAMES, FilterIndex, GraphStatistics

__all__ = ["CATEGORY_NAMES", "SPLITS", "FilterIndex", "GraphStatistics", "KnowledgeGraph"]
