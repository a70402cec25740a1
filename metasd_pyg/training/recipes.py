r"""Every training mode as a composition of trainer parts, built from the configuration.

Paper: Li, Liu, Yang, Li, "Self-Distillation with Meta Learning for Knowledge
Graph Completion", Findings of EMNLP 2022,
https://aclanthology.org/2022.findings-emnlp.149/.

===================== ============================================================
mode                  composition
===================== ============================================================
``"teacher"``         :class:`~metasd_pyg.training.objective.DenseObjective`
``"dense_same_nnz"``  the same, on a model of dimension :func:`same_nnz_dim`
``"metasd"``          :class:`~metasd_pyg.training.objective.MutualObjective`,
                      :class:`~metasd_pyg.training.dynamic.DynamicPruning`
                      (:class:`~metasd_pyg.pruning.Pruner`,
                      :class:`~metasd_pyg.pruning.PruningSchedule`) and, with
                      ``meta=True``, :class:`~metasd_pyg.training.meta.MetaStep`
``"oneshot"``         :class:`OneShot`: a teacher trainer, then :class:`PruneOnce`
                      and a fine-tuning trainer with
                      :class:`~metasd_pyg.training.objective.MaskedObjective`
===================== ============================================================

:func:`compose` is the only place that reads the mode; every part is built
from its own section, and built parts passed in (a model, a pruner, a
schedule, a meta step) replace the ones the sections describe and are
recorded as what ran.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch_geometric.nn.kge import KGEModel

from metasd_pyg.data.graph import KnowledgeGraph
from metasd_pyg.models.config import ModelConfig
from metasd_pyg.training.callbacks import Callback
from metasd_pyg.training.checkpoint import checkpoint_json, has_checkpoint
from metasd_pyg.training.config import MetaSDConfig
from metasd_pyg.training.distributed import World
from metasd_pyg.training.dynamic import DynamicPruning, MaskComputer, Schedule
from metasd_pyg.training.engine import engine_for
from metasd_pyg.training.meta import MetaStep
from metasd_pyg.training.objective import DenseObjective, MaskedObjective, MutualObjective
from metasd_pyg.training.result import TrainResult
from metasd_pyg.training.selection import Evaluator
from metasd_pyg.training.stream import steps_per_epoch
from metasd_pyg.training.trainer import Trainer


def same_nnz_dim(dim: int, sparsity: float) -> int:
    r"""Dimension of the dense model with as many weights as the student has non-zeros.

    Every supported model has a parameter count linear in its dimension, so
    the dense model of dimension :math:`\mathrm{round}((1 - s)\,d)` has (up to
    rounding) the student's :math:`(1 - s)` share of the teacher's weights.

    Args:
        dim: The teacher's dimension :math:`d`.
        sparsity: The student's sparsity :math:`s`.
    """
    return max(1, math.floor((1.0 - sparsity) * dim + 0.5))


class Run(Protocol):
    """What :func:`compose` returns: a trainer, or a composition of trainers."""

    model: KGEModel
    config: MetaSDConfig

    @property
    def masks(self) -> Any:
        """The final masks (``None`` for dense runs)."""

    def student_weights(self) -> Any:
        """The final masked tables, detached (``None`` for dense runs)."""

    def fit(self, *, resume: bool = False) -> TrainResult:
        """Train and return the result."""
        ...


@dataclass(frozen=True)
class Built:
    """Parts given ready-made to :func:`compose` (``None`` = build from the section).

    Attributes:
        model: A reciprocal PyG KGE model.
        pruner: Mask computer (:class:`~metasd_pyg.pruning.Pruner` or your own).
        schedule: Mask recomputation schedule.
        meta: A meta step, or ``False`` for the no-meta ablation.
        callbacks: Extra parts and user callbacks (called after the built-in parts).
        checkpoint_dir: Folder for atomic checkpoints.
        device: Overrides the runtime section's device.
        evaluator: Evaluation function.
        world: The ranks of a data-parallel run
            (:class:`~metasd_pyg.training.distributed.World`; ``None``: this process alone).
    """

    model: KGEModel | None = None
    pruner: MaskComputer | None = None
    schedule: Schedule | None = None
    meta: MetaStep | bool | None = None
    callbacks: Sequence[Callback] = ()
    checkpoint_dir: str | Path | None = None
    device: str | torch.device | None = None
    evaluator: Evaluator | None = None
    world: World | None = None


def _model(graph: KnowledgeGraph, config: MetaSDConfig, built: Built,
           dim: int) -> tuple[KGEModel, MetaSDConfig]:
    """The model and the configuration that records it."""
    if built.model is None:
        sec = config.model.replace(dim=dim)
        return sec.build(graph.num_entities, graph.num_relations, config.trainer.seed), config
    return built.model, config.with_sections(ModelConfig.of(built.model))


def _trainer(graph: KnowledgeGraph, config: MetaSDConfig, built: Built, model: KGEModel,
             objective: Any, parts: Sequence[Callback], *, phase: str,
             epochs: int | None = None) -> Trainer:
    """A trainer over ``parts`` (then the user's callbacks) with a fresh main optimiser."""
    engine = engine_for(config)
    return Trainer(model, graph, objective,
                   config.optim.build(model.parameters(), sparse=engine.sparse),
                   config=config, parts=[*parts, *built.callbacks],
                   checkpoint_dir=built.checkpoint_dir, device=built.device,
                   evaluator=built.evaluator, phase=phase, epochs=epochs, engine=engine,
                   world=built.world)


def teacher(graph: KnowledgeGraph, config: MetaSDConfig, built: Built) -> Run:
    """The dense teacher alone."""
    model, config = _model(graph, config, built, config.model.dim)
    return _trainer(graph, config, built, model, DenseObjective(config.loss), (),
                    phase=config.recipe.mode)


def dense_same_nnz(graph: KnowledgeGraph, config: MetaSDConfig, built: Built) -> Run:
    """A dense model with as many weights as the student (:func:`same_nnz_dim`).

    The recorded ``dim`` stays the teacher's: the mode names the comparison.
    """
    model, config = _model(graph, config, built,
                           same_nnz_dim(config.model.dim, config.pruning.sparsity))
    return _trainer(graph, config, built, model, DenseObjective(config.loss), (),
                    phase=config.recipe.mode)


def _pruner(config: MetaSDConfig, built: Built) -> MaskComputer:
    if built.pruner is not None:
        return built.pruner
    from metasd_pyg.pruning import Pruner

    return Pruner.from_config(config.pruning, seed=config.trainer.seed)


def metasd(graph: KnowledgeGraph, config: MetaSDConfig, built: Built) -> Run:
    """Teacher and pruned student, mutual distillation, dynamic pruning, meta step."""
    from metasd_pyg.pruning import PruningSchedule

    model, config = _model(graph, config, built, config.model.dim)
    meta: MetaStep | None = None
    if isinstance(built.meta, MetaStep):
        meta = built.meta
    elif built.meta is not False and config.meta.enabled:
        meta = MetaStep.from_config(config.meta)
    config = config.with_sections(config.meta.replace(enabled=meta is not None))
    pruner = _pruner(config, built)
    schedule = built.schedule
    if schedule is None:
        steps = steps_per_epoch(graph, [] if meta is None else [meta], config.trainer.seed,
                                config.trainer.batch_size)
        sparsity = float(getattr(pruner, "sparsity", config.pruning.sparsity))
        schedule = PruningSchedule.from_config(config.schedule, sparsity, steps_per_epoch=steps)
    pruning = DynamicPruning(pruner, schedule, graph.stats.degree)
    parts: list[Callback] = [pruning] if meta is None else [pruning, meta]
    trainer = _trainer(graph, config, built, model, MutualObjective(config.loss, config.distill),
                       parts, phase=config.recipe.mode)
    pruning.degree = graph.stats.degree.to(trainer.device)
    return trainer


class PruneOnce(Callback):
    """Prune the trained teacher once, at the start of fine-tuning (masks then fixed).

    Records the pruned model before fine-tuning (``extra["oneshot_valid"]`` /
    ``["oneshot_test"]``) and makes it the first candidate of model selection.

    Args:
        pruner: Mask computer.
        degree: ``[E]`` train degrees (degree-aware masks).
        sparsity: Target sparsity.
    """

    name = "prune_once"

    def __init__(self, pruner: MaskComputer, degree: torch.Tensor, sparsity: float) -> None:
        self.pruner = pruner
        self.degree = degree
        self.sparsity = sparsity

    def sections(self) -> tuple[Any, ...]:
        found = getattr(self.pruner, "config", None)
        return () if found is None else (found,)

    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer.masks is not None:  # resumed: the masks are the checkpoint's
            return
        with torch.no_grad():
            masks = self.pruner.compute(trainer.model, degree=self.degree.to(trainer.device),
                                        sparsity=self.sparsity)
        trainer.masks = {k: v.to(device=trainer.device, dtype=torch.bool)
                         for k, v in masks.items()}
        sel = trainer.selection
        valid = sel.evaluate(trainer, "valid", True)
        trainer.extra["oneshot_valid"] = valid
        trainer.extra["oneshot_test"] = sel.evaluate(trainer, "test", True)
        sel.consider(trainer, float(valid.summary["mrr"]))


class OneShot:
    """One-shot pruning: train a teacher, prune it once, fine-tune with the mask fixed.

    Two trainers on one checkpoint folder: the teacher phase
    (``trainer.epochs`` epochs) and the fine-tuning phase (``finetune_epochs``
    more, a fresh optimiser, the random state and history carried over). A
    checkpoint of the fine-tuning phase (it holds ``oneshot_*`` results)
    resumes there; any other resumes the teacher phase.

    Args:
        graph: The knowledge graph.
        config: The run's configuration.
        built: Ready-made parts.
    """

    def __init__(self, graph: KnowledgeGraph, config: MetaSDConfig, built: Built) -> None:
        self.graph, self.built = graph, built
        self.model, config = _model(graph, config, built, config.model.dim)
        self.pruner = _pruner(config, built)
        reported = getattr(self.pruner, "config", None)
        if reported is not None:  # both phases record the pruner that runs
            config = config.with_sections(reported)
        self.teacher = _trainer(graph, config, built, self.model, DenseObjective(config.loss),
                                (), phase="teacher")
        self.config: MetaSDConfig = self.teacher.config
        self.finetune: Trainer | None = None

    @property
    def masks(self) -> Any:
        """The fixed masks of the fine-tuned model (``None`` before pruning)."""
        return None if self.finetune is None else self.finetune.masks

    def student_weights(self) -> Any:
        """The fine-tuned masked tables, detached (``None`` before pruning)."""
        return None if self.finetune is None else self.finetune.student_weights()

    def _finetune_trainer(self) -> Trainer:
        cfg = self.config
        prune = PruneOnce(self.pruner, self.graph.stats.degree, cfg.pruning.sparsity)
        trainer = _trainer(self.graph, cfg, self.built, self.model, MaskedObjective(cfg.loss),
                           [prune], phase="finetune",
                           epochs=cfg.trainer.epochs + cfg.recipe.finetune_epochs)
        self.config = trainer.config
        return trainer

    def fit(self, *, resume: bool = False) -> TrainResult:
        """Train the teacher (unless resuming fine-tuning), prune once, fine-tune.

        Args:
            resume: Continue from the checkpoint folder's last checkpoint.
        """
        folder = self.built.checkpoint_dir
        finetuning = (resume and folder is not None and has_checkpoint(folder)
                      and "oneshot_valid" in checkpoint_json(folder)["state"].get("extra", {}))
        self.finetune = self._finetune_trainer()
        if finetuning:
            return self.finetune.fit(resume=True)
        first = self.teacher.fit(resume=resume)
        # the fine-tuning phase continues the epochs, history and random state
        ft, t = self.finetune, self.teacher
        ft.epoch, ft.global_step, ft.history = t.epoch, t.global_step, list(t.history)
        ft.generator.set_state(t.generator.get_state())
        ft.extra.update(teacher_valid=first.teacher_valid, teacher_test=first.teacher_test)
        result = self.finetune.fit()
        result.wall_time += first.wall_time
        return result


#: Mode -> its composition.
RECIPES: dict[str, Callable[[KnowledgeGraph, MetaSDConfig, Built], Run]] = {
    "metasd": metasd,
    "teacher": teacher,
    "dense_same_nnz": dense_same_nnz,
    "oneshot": OneShot,
}


def compose(graph: KnowledgeGraph, config: MetaSDConfig | None = None,
            built: Built | None = None) -> Run:
    """The run of ``config``'s mode on ``graph``, every part built from its section.

    Args:
        graph: The knowledge graph.
        config: The configuration (default: every section's defaults).
        built: Ready-made parts that replace the ones the sections describe.
    """
    config = config if config is not None else MetaSDConfig()
    built = built if built is not None else Built()
    return RECIPES[config.recipe.mode](graph, config, built)


__all__ = ["RECIPES", "Built", "OneShot", "PruneOnce", "Run", "compose", "same_nnz_dim"]
