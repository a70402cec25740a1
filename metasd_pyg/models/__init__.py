"""PyG KGE models: construction, scoring modes, and one adapter per model class."""

from metasd_pyg.models.adapters import ADAPTERS, ModelAdapter, adapter_for, adapter_of
from metasd_pyg.models.factory import MODEL_NAMES, build_model, model_name
from metasd_pyg.models.scoring import (
    ENTITY_TABLES,
    RELATION_TABLES,
    Weights,
    head_query,
    model_weights,
    score_heads,
    score_relations,
    score_tails,
    score_triples,
    tail_query,
)

__all__ = [
    "ADAPTERS",
    "ENTITY_TABLES",
    "MODEL_NAMES",
    "RELATION_TABLES",
    "ModelAdapter",
    "Weights",
    "adapter_for",
    "adapter_of",
    "build_model",
    "head_query",
    "model_name",
    "model_weights",
    "score_heads",
    "score_relations",
    "score_tails",
    "score_triples",
    "tail_query",
]
