"""Data layer: one entry point over PyG, OGB, text folders and the synthetic generator."""

from metasd_pyg.data.graph import SPLITS, KnowledgeGraph
from metasd_pyg.data.loader import DATASET_NAMES, load_dataset
from metasd_pyg.data.ogb_writer import write_ogb_wikikg2
from metasd_pyg.data.statistics import CATEGORY_NAMES, FilterIndex, GraphStatistics
from metasd_pyg.data.synthetic import generate_synthetic

__all__ = [
    "CATEGORY_NAMES",
    "DATASET_NAMES",
    "SPLITS",
    "FilterIndex",
    "GraphStatistics",
    "KnowledgeGraph",
    "generate_synthetic",
    "load_dataset",
    "write_ogb_wikikg2",
]
