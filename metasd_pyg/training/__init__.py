"""MetaSD training: sections, objectives, the meta step, the trainer and its compositions.

Paper: Li, Liu, Yang, Li, "Self-Distillation with Meta Learning for Knowledge
Graph Completion", Findings of EMNLP 2022,
https://aclanthology.org/2022.findings-emnlp.149/. See ``docs/training.md``.
"""

from metasd_pyg.training.api import MetaSD, train_metasd
from metasd_pyg.training.callbacks import Callback, StepContext
from metasd_pyg.training.checkpoint import (
    TrainingState,
    check_resume,
    has_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from metasd_pyg.training.config import PAPER_FB15K237, MetaSDConfig
from metasd_pyg.training.dynamic import DynamicPruning
from metasd_pyg.training.losses import (
    REGULARIZERS,
    KLWeights,
    MutualWeights,
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
from metasd_pyg.training.meta import META_PATHS, MetaConfig, MetaStep, meta_gradient
from metasd_pyg.training.modes import MODES, ROLES, RecipeConfig, Role, has_student, roles_of
from metasd_pyg.training.objective import (
    DenseObjective,
    DistillConfig,
    LossConfig,
    MaskedObjective,
    MutualObjective,
    Objective,
    StudentLoss,
)
from metasd_pyg.training.optim import OPTIMIZERS, OptimConfig, make_optimizer
from metasd_pyg.training.presets import PRESETS, Preset
from metasd_pyg.training.recipes import Built, OneShot, PruneOnce, compose, same_nnz_dim
from metasd_pyg.training.result import TrainResult
from metasd_pyg.training.runtime import RuntimeConfig, resolve_device
from metasd_pyg.training.trainer import Trainer
from metasd_pyg.training.trainer_config import TrainerConfig

__all__ = [
    "META_PATHS",
    "MODES",
    "OPTIMIZERS",
    "PAPER_FB15K237",
    "PRESETS",
    "REGULARIZERS",
    "ROLES",
    "Built",
    "Callback",
    "DenseObjective",
    "DistillConfig",
    "DynamicPruning",
    "KLWeights",
    "LossConfig",
    "MaskedObjective",
    "MetaConfig",
    "MetaSD",
    "MetaSDConfig",
    "MetaStep",
    "MutualObjective",
    "MutualWeights",
    "Objective",
    "OneShot",
    "OptimConfig",
    "Preset",
    "PruneOnce",
    "RecipeConfig",
    "Role",
    "RuntimeConfig",
    "StepContext",
    "StudentLoss",
    "TrainResult",
    "Trainer",
    "TrainerConfig",
    "TrainingState",
    "check_resume",
    "compose",
    "distillation_loss",
    "dura",
    "entity_cross_entropy",
    "has_checkpoint",
    "has_student",
    "load_checkpoint",
    "make_optimizer",
    "meta_gradient",
    "mutual_logit_loss",
    "n3",
    "reciprocal_triples",
    "regularizer",
    "relation_cross_entropy",
    "resolve_device",
    "roles_of",
    "same_nnz_dim",
    "sample_candidates",
    "sampled_cross_entropy",
    "save_checkpoint",
    "tail_logits",
    "train_metasd",
]
