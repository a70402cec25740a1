"""MetaSD training: losses, one-step meta self-distillation, the trainer and its baselines.

Paper: Li, Liu, Yang, Li, "Self-Distillation with Meta Learning for Knowledge
Graph Completion", Findings of EMNLP 2022,
https://aclanthology.org/2022.findings-emnlp.149/. See ``docs/training.md``.
"""

from metasd_pyg.training.api import MetaSD, train_metasd
from metasd_pyg.training.callbacks import Callback, StepContext
from metasd_pyg.training.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from metasd_pyg.training.config import MODES, PAPER_FB15K237, STRATEGIES, MetaSDConfig
from metasd_pyg.training.dynamic import DynamicPruning
from metasd_pyg.training.losses import (
    REGULARIZERS,
    distillation_loss,
    dura,
    entity_cross_entropy,
    mutual_logit_loss,
    n3,
    reciprocal_triples,
    regularizer,
    relation_cross_entropy,
    sample_candidates,
    sampled_cross_entropy,
    tail_logits,
)
from metasd_pyg.training.meta import META_PATHS, MetaStep, meta_gradient
from metasd_pyg.training.optim import OPTIMIZERS, make_optimizer
from metasd_pyg.training.trainer import Trainer, TrainResult, resolve_device, same_nnz_dim

__all__ = [
    "META_PATHS",
    "MODES",
    "OPTIMIZERS",
    "PAPER_FB15K237",
    "REGULARIZERS",
    "STRATEGIES",
    "Callback",
    "DynamicPruning",
    "MetaSD",
    "MetaSDConfig",
    "MetaStep",
    "StepContext",
    "TrainResult",
    "Trainer",
    "distillation_loss",
    "dura",
    "entity_cross_entropy",
    "has_checkpoint",
    "load_checkpoint",
    "make_optimizer",
    "meta_gradient",
    "mutual_logit_loss",
    "n3",
    "reciprocal_triples",
    "regularizer",
    "relation_cross_entropy",
    "resolve_device",
    "same_nnz_dim",
    "sample_candidates",
    "sampled_cross_entropy",
    "save_checkpoint",
    "tail_logits",
    "train_metasd",
]
