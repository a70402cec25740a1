"""metasd-pyg: MetaSD compressed knowledge-graph embeddings on PyTorch Geometric.

Paper: Li, Liu, Yang, Li. "Self-Distillation with Meta Learning for Knowledge
Graph Completion". Findings of EMNLP 2022. https://aclanthology.org/2022.findings-emnlp.149/

Data flows one way: :mod:`metasd_pyg.data` (``load_dataset``) ->
:mod:`metasd_pyg.models` (PyG KGE models, scoring modes) ->
:mod:`metasd_pyg.training` (with :mod:`metasd_pyg.pruning` and the meta step as
parts) -> :mod:`metasd_pyg.evaluation` -> :mod:`metasd_pyg.report` /
:mod:`metasd_pyg.export`.
"""

from metasd_pyg.data import (
    DATASET_NAMES,
    KnowledgeGraph,
    generate_synthetic,
    load_dataset,
    write_ogb_wikikg2,
)
from metasd_pyg.errors import ConfigError, DataError, MetaSDError, RunFolderError

__version__ = "0.1.0"

__all__ = [
    "DATASET_NAMES",
    "ConfigError",
    "DataError",
    "KnowledgeGraph",
    "MetaSDError",
    "RunFolderError",
    "__version__",
    "generate_synthetic",
    "load_dataset",
    "write_ogb_wikikg2",
]
