"""metasd-pyg: MetaSD compressed knowledge-graph embeddings on PyTorch Geometric.

Paper: Li, Liu, Yang, Li. "Self-Distillation with Meta Learning for Knowledge
Graph Completion". Findings of EMNLP 2022. https://aclanthology.org/2022.findings-emnlp.149/

Data flows one way: :mod:`metasd_pyg.data` (``load_dataset``) ->
:mod:`metasd_pyg.models` (PyG KGE models, scoring modes) ->
:mod:`metasd_pyg.pruning` / :mod:`metasd_pyg.evaluation` ->
:mod:`metasd_pyg.training` (MetaSD: prunes, evaluates while training) ->
:mod:`metasd_pyg.report` / :mod:`metasd_pyg.export` -> :mod:`metasd_pyg.runs`
(one run end to end) -> :mod:`metasd_pyg.cli`, all standing on
:mod:`metasd_pyg.storage` (atomic writes, run folders) and
:mod:`metasd_pyg.errors` (the layers are checked by ``tests/test_layers.py``).
"""

from metasd_pyg.data import (
    DATASET_NAMES,
    KnowledgeGraph,
    generate_synthetic,
    load_dataset,
    write_ogb_wikikg2,
)
from metasd_pyg.errors import ConfigError, DataError, MetaSDError, RunFolderError
from metasd_pyg.evaluation import EvaluationResult, compare, evaluate
from metasd_pyg.models import build_model
from metasd_pyg.pruning import Pruner
from metasd_pyg.training import MetaSD, MetaSDConfig, Trainer, TrainResult, train_metasd

__version__ = "0.1.0"

__all__ = [
    "DATASET_NAMES",
    "ConfigError",
    "DataError",
    "EvaluationResult",
    "KnowledgeGraph",
    "MetaSD",
    "MetaSDConfig",
    "MetaSDError",
    "Pruner",
    "RunFolderError",
    "TrainResult",
    "Trainer",
    "__version__",
    "build_model",
    "compare",
    "evaluate",
    "generate_synthetic",
    "load_dataset",
    "train_metasd",
    "write_ogb_wikikg2",
]
