r"""The MetaSD trainer: teacher and pruned student in one run, and every baseline as a mode.

Paper: Li, Liu, Yang, Li, "Self-Distillation with Meta Learning for Knowledge
Graph Completion", Findings of EMNLP 2022,
https://aclanthology.org/2022.findings-emnlp.149/.

One training step of ``mode="metasd"`` (see ``docs/training.md``):

.. math::
    L = \underbrace{\mathrm{CE}(T) + \Omega(\theta) + w_\rho L_\rho(\theta)
        + \lambda_T D(T, \mathrm{sg}(S))}_{\text{teacher}}
      + \underbrace{\mathrm{CE}(S) + \Omega(\theta\odot M) + w_\rho L_\rho(\theta\odot M)
        + \lambda_S D(S, \mathrm{sg}(T))}_{\text{student}}

with :math:`T = f(\theta)`, :math:`S = f(\theta \odot M)` (the student is a
masked *view* of the same parameters), :math:`\mathrm{sg}` stop-gradient and
:math:`D(a, b) = 3\,\mathrm{KL}(a\|b) + \mathrm{KL}(b\|a)` at temperature 3.
One backward pass of :math:`L` gives
:math:`\nabla_\theta L = \nabla_\theta L_T + M \odot \nabla_{\tilde\theta} L_S`:
exactly the sum of the two backward passes of the official code (its
student forward sees the same, not yet updated, parameters). The meta step
(:class:`~metasd_pyg.training.meta.MetaStep`) and dynamic pruning
(:class:`~metasd_pyg.training.dynamic.DynamicPruning`) are parts plugged into
the hooks of :mod:`metasd_pyg.training.callbacks`.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch_geometric.nn.kge import KGEModel
from tqdm.auto import tqdm

from metasd_pyg.data.graph import KnowledgeGraph
from metasd_pyg.errors import ConfigError
from metasd_pyg.models.factory import build_model, model_name
from metasd_pyg.pruning import mask_density
from metasd_pyg.training.callbacks import Callback, StepContext
from metasd_pyg.training.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from metasd_pyg.training.config import TRAINER_RESUMABLE, MetaSDConfig, saved_config_values
from metasd_pyg.training.dynamic import DynamicPruning, MaskComputer, Schedule
from metasd_pyg.training.losses import (
    entity_cross_entropy,
    mutual_logit_loss,
    reciprocal_triples,
    regularizer,
    relation_cross_entropy,
    sample_candidates,
    tail_logits,
)
from metasd_pyg.training.meta import MetaStep
from metasd_pyg.training.optim import load_optimizer_state, make_optimizer, optimizer_state
from metasd_pyg.training.views import active_units, compact_view, student_weights

log = logging.getLogger(__name__)

#: ``evaluate(model, graph, split, *, weights=..., max_queries=..., ...)`` -> result
#: with ``.summary`` (see :func:`metasd_pyg.evaluation.evaluate`).
Evaluator = Callable[..., Any]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/``None`` -> CUDA if available else CPU; anything else as given.

    Args:
        device: Device spec.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def same_nnz_dim(config: MetaSDConfig) -> int:
    r"""Dimension of the dense model with as many weights as the student has non-zeros.

    Every supported model has a parameter count linear in its dimension, so
    the dense model of dimension :math:`\mathrm{round}((1 - s)\,d)` has (up to
    rounding) the student's :math:`(1 - s)` share of the teacher's weights.

    Args:
        config: The run's configuration (``dim``, ``sparsity``).
    """
    return max(1, math.floor((1.0 - config.sparsity) * config.dim + 0.5))


def _reinit(model: KGEModel, scale: float, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.fit`.

    Attributes:
        history: One dict per epoch (losses, sparsity, churn, time, valid metrics).
        best_epoch: Epoch (1-based count of finished epochs) of the selected model.
        best_valid_mrr: Its selection metric (student valid MRR; the model's own
            for the dense modes).
        teacher_valid: Final evaluation of the (dense) teacher on valid.
        teacher_test: Same on test.
        student_valid: Final evaluation of the selected student on valid
            (``None`` for the dense modes).
        student_test: Same on test.
        extra: Mode-specific results (``oneshot``: the pruned teacher before
            fine-tuning, ``"oneshot_valid"`` / ``"oneshot_test"``; the teacher
            results are those of the trained teacher before pruning).
        config: The configuration of the run.
        wall_time: Seconds spent in :meth:`Trainer.fit`.
        stopped_early: Whether early stopping ended the run.
    """

    history: list[dict[str, Any]]
    best_epoch: int
    best_valid_mrr: float
    teacher_valid: Any
    teacher_test: Any
    student_valid: Any
    student_test: Any
    config: MetaSDConfig
    extra: dict[str, Any] = field(default_factory=dict)
    wall_time: float = 0.0
    stopped_early: bool = False

    @property
    def final_valid(self) -> Any:
        """The selected model's valid result (student if there is one)."""
        return self.student_valid if self.student_valid is not None else self.teacher_valid

    @property
    def final_test(self) -> Any:
        """The selected model's test result (student if there is one)."""
        return self.student_test if self.student_test is not None else self.teacher_test

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (evaluation results via their ``to_dict``)."""

        def enc(r: Any) -> Any:
            return None if r is None else r.to_dict()

        return {
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_valid_mrr": self.best_valid_mrr,
            "teacher_valid": enc(self.teacher_valid),
            "teacher_test": enc(self.teacher_test),
            "student_valid": enc(self.student_valid),
            "student_test": enc(self.student_test),
            "extra": {k: (v.to_dict() if hasattr(v, "to_dict") else v)
                      for k, v in self.extra.items()},
            "config": self.config.to_dict(),
            "wall_time": self.wall_time,
            "stopped_early": self.stopped_early,
        }


def _as_result(value: Any) -> Any:
    """An evaluation result, rebuilt from its dict form after a resume when possible."""
    if isinstance(value, dict) and "summary" in value and "buckets" in value:
        from metasd_pyg.evaluation import EvaluationResult

        return EvaluationResult.from_dict(value)
    return value


def _default_evaluator() -> Evaluator:
    from metasd_pyg.evaluation import evaluate

    return evaluate


class Trainer:
    r"""Train a PyG KGE teacher and its pruned student (or a baseline) on a knowledge graph.

    Args:
        model: A PyG KGE model built with ``reciprocal=True`` (2R relation
            rows), or ``None`` to build ``config.model`` / ``config.dim`` (for
            ``mode="dense_same_nnz"`` with :func:`same_nnz_dim`).
        graph: The knowledge graph (train / valid / test).
        config: Options (defaults: :class:`MetaSDConfig`).
        pruner: Mask computer (default: ``Pruner(config.strategy, config.sparsity, ...)``).
        schedule: When to recompute masks (default: from ``config``).
        meta: The meta-step part (default: built from ``config`` when
            ``config.meta``; pass your own :class:`MetaStep` to change it).
        callbacks: Extra parts / user callbacks (called after the built-in parts).
        checkpoint_dir: Folder for atomic checkpoints (``None`` = no checkpoints).
        device: Overrides ``config.device``.
        evaluator: Evaluation function (default :func:`metasd_pyg.evaluation.evaluate`).
    """

    def __init__(
        self,
        model: KGEModel | None,
        graph: KnowledgeGraph,
        config: MetaSDConfig | None = None,
        *,
        pruner: MaskComputer | None = None,
        schedule: Schedule | None = None,
        meta: MetaStep | None = None,
        callbacks: Sequence[Callback] = (),
        checkpoint_dir: str | Path | None = None,
        device: str | torch.device | None = None,
        evaluator: Evaluator | None = None,
    ) -> None:
        self.config = config if config is not None else MetaSDConfig()
        self.config.validate()
        cfg = self.config
        if not cfg.reciprocal:
            raise ConfigError("reciprocal=False is not supported by the trainer (head queries "
                              "are trained as reciprocal tail queries)")
        self.device = resolve_device(device if device is not None else cfg.device)
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        self.graph = graph
        R = graph.num_relations
        if model is None:
            dim = same_nnz_dim(cfg) if cfg.mode == "dense_same_nnz" else cfg.dim
            torch.manual_seed(cfg.seed)
            model = build_model(cfg.model, graph.num_entities, R, dim, reciprocal=True)
            if cfg.init_scale is not None:
                _reinit(model, cfg.init_scale, cfg.seed)
        elif model.num_relations != 2 * R:
            raise ConfigError(f"model has {model.num_relations} relation rows; the trainer needs a "
                              f"reciprocal model with 2 x {R} (build_model(..., reciprocal=True))")
        self.model = model.to(self.device)
        model_name(self.model)  # raises ConfigError for unsupported classes
        self.evaluator = evaluator
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None

        # Random state of everything the run samples (shuffling, quiz, negatives).
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self._split_stream()

        self._masks: dict[str, Tensor] | None = None
        self.units: Tensor | None = None
        self.optimizer = make_optimizer(cfg.optimizer, self.model.parameters(), cfg.lr)
        self.pruner = pruner
        self.parts: list[Callback] = []
        self._pruning: DynamicPruning | None = None
        if cfg.has_student:
            if self.pruner is None:
                from metasd_pyg.pruning import Pruner

                self.pruner = Pruner(cfg.strategy, cfg.sparsity, alpha=cfg.alpha,
                                     k_min=cfg.k_min, k_max=cfg.k_max,
                                     k_max_factor=cfg.k_max_factor,
                                     relation_rule=cfg.relation_rule,
                                     importance=cfg.importance,
                                     random_fraction=cfg.random_fraction, seed=cfg.seed)
            if cfg.mode == "metasd":
                if schedule is None:
                    from metasd_pyg.pruning import PruningSchedule

                    schedule = PruningSchedule(cfg.sparsity, every_epochs=cfg.prune_every_epochs,
                                               every_steps=cfg.prune_every_steps,
                                               ramp_epochs=cfg.ramp_epochs,
                                               steps_per_epoch=self.steps_per_epoch)
                degree = graph.stats.degree.to(self.device)
                self._pruning = DynamicPruning(self.pruner, schedule, degree)
                self.parts.append(self._pruning)
        self.meta: MetaStep | None = None
        if cfg.uses_meta:
            self.meta = meta if meta is not None else MetaStep(
                every=cfg.meta_every, path=cfg.meta_path, virtual_lr=cfg.virtual_lr,
                meta_lr=cfg.meta_lr, optimizer=cfg.meta_optimizer,
                quiz_batch_size=cfg.quiz_batch_size, batch_size=cfg.meta_batch_size)
            self.parts.append(self.meta)
        self.parts.extend(callbacks)

        # Progress of the run (all checkpointed).
        self.epoch = 0
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.best_metric = -math.inf
        self.best_epoch = 0
        self._best_state: dict[str, Tensor] | None = None
        self._bad_evals = 0
        self._phase = self._phase_of(0)
        self.extra: dict[str, Any] = {}
        self._stop = False

    # ---------------------------------------------------------------- data
    def _split_stream(self) -> None:
        """Training stream and quiz slice (held out of the stream; reciprocal form)."""
        cfg = self.config
        train = self.graph.train
        if cfg.uses_meta:
            n = train.size(0)
            n_quiz = max(1, round(cfg.quiz_fraction * n))
            if n_quiz >= n:
                raise ConfigError(f"quiz_fraction={cfg.quiz_fraction} leaves no training triples")
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + 7919))
            self.quiz_index = perm[:n_quiz].sort().values
            keep = perm[n_quiz:].sort().values
            quiz, stream = train[self.quiz_index], train[keep]
        else:
            self.quiz_index = torch.empty(0, dtype=torch.long)
            quiz, stream = train[:0], train
        R = self.graph.num_relations
        self.stream = reciprocal_triples(stream, R).to(self.device)
        self.quiz_triples = reciprocal_triples(quiz, R).to(self.device)
        #: Batches per epoch.
        self.steps_per_epoch = max(1, math.ceil(self.stream.size(0) / cfg.batch_size))

    # --------------------------------------------------------------- modes
    def _phase_of(self, epoch: int) -> str:
        cfg = self.config
        if cfg.mode == "oneshot":
            return "teacher" if epoch < cfg.epochs else "finetune"
        return cfg.mode

    @property
    def total_epochs(self) -> int:
        """Number of epochs of the whole run (teacher phase + fine-tuning for ``oneshot``)."""
        cfg = self.config
        return cfg.epochs + (cfg.finetune_epochs if cfg.mode == "oneshot" else 0)

    @property
    def masks(self) -> dict[str, Tensor] | None:
        """The student's current masks (parameter name -> bool, ``True`` = kept)."""
        return self._masks

    @masks.setter
    def masks(self, value: dict[str, Tensor] | None) -> None:
        self._masks = value
        # columns the student's entity scores use (views.compact_view); None = all
        self.units = (active_units(self.model, value)
                      if value is not None and self.config.compact_student else None)

    def student_weights(self) -> dict[str, Tensor] | None:
        """The student's (masked) parameters, detached; ``None`` without a student."""
        if self.masks is None:
            return None
        params = {n: p.detach() for n, p in self.model.named_parameters()}
        return student_weights(params, self.masks)

    # ---------------------------------------------------------------- step
    def _aux_losses(self, batch: Tensor, weights: dict[str, Tensor] | None,
                    reg_weight: float | None = None) -> Tensor:
        """Regulariser and relation-prediction loss of one view."""
        cfg = self.config
        lam = cfg.regularizer_weight if reg_weight is None else reg_weight
        loss = regularizer(cfg.regularizer, self.model, batch, lam, weights)
        if cfg.relation_weight > 0:
            loss = loss + cfg.relation_weight * relation_cross_entropy(self.model, batch, weights)
        return loss

    def _losses(self, batch: Tensor, weights: dict[str, Tensor] | None, logits: Tensor,
                target: Tensor) -> Tensor:
        return entity_cross_entropy(logits, target) + self._aux_losses(batch, weights)

    @property
    def pruning(self) -> DynamicPruning | None:
        """The dynamic-pruning part of a MetaSD run (``None`` for other modes)."""
        return self._pruning

    def start(self) -> None:
        """Run the parts' ``on_fit_start`` hooks: first masks, meta optimiser.

        :meth:`fit` calls it (unless it resumes from a checkpoint); call it
        yourself before driving :meth:`train_step` from your own loop.
        """
        for part in self.parts:
            part.on_fit_start(self)

    def train_step(self, batch: Tensor) -> dict[str, float]:
        """One optimisation step on ``batch`` and ``global_step += 1``.

        Forwards of the teacher (and student), the parts' ``on_step`` hooks
        (meta step), one backward pass, the queued part updates and the main
        optimiser step, then the parts' ``on_step_end`` hooks (step-scheduled
        mask recomputation). :meth:`fit` calls it for every batch of an epoch;
        a custom loop (e.g. over a distributed sampler) can call it directly.

        Args:
            batch: ``[B, 3]`` rows of the reciprocal training stream
                (:attr:`stream`), on the trainer's device.

        Returns:
            The step's scalar logs (``loss``, and ``quiz_loss`` on meta steps).
        """
        if batch.dim() != 2 or batch.size(0) == 0 or batch.size(1) != 3:
            raise ValueError(f"train_step needs a non-empty [B, 3] batch, got {tuple(batch.shape)}")
        logs = self._step(batch)
        self.global_step += 1
        return logs

    def _step(self, batch: Tensor) -> dict[str, float]:
        cfg = self.config
        phase = self._phase
        cand: Tensor | None = None
        target = batch[:, 2]
        if cfg.loss == "sampled":
            cand, target = sample_candidates(batch, self.graph.num_entities, cfg.num_negatives,
                                             self.generator)
        params = dict(self.model.named_parameters())

        if phase != "metasd":
            # one model: the masked one for one-shot fine-tuning (mask fixed), else dense
            single: dict[str, Tensor] | None = None
            if phase == "finetune":
                assert self.masks is not None
                single = student_weights(params, self.masks)
            z = tail_logits(self.model, batch, single, cand)
            loss = self._losses(batch, single, z, target)
            self._apply(loss, [])
            return {"loss": float(loss.detach())}

        # metasd: teacher + student views of the same parameters, mutual loss, parts.
        assert self.masks is not None
        view = student_weights(params, self.masks)
        z_t = tail_logits(self.model, batch, None, cand)
        z_s = tail_logits(self.model, batch, compact_view(view, self.masks, self.units), cand)
        # CE and distillation of both views, fused (closed-form gradients; see losses.py)
        logit_loss = mutual_logit_loss(
            z_t, z_s, target, cfg.temperature, cfg.distill_weight_ts, cfg.distill_weight_st,
            self.teacher_distill_scale(), cfg.student_distill, 1.0, cfg.student_weight)
        l_t = self._aux_losses(batch, None)
        l_s = self._aux_losses(batch, view, cfg.student_regularizer_weight)
        loss = logit_loss + l_t + cfg.student_weight * l_s
        ctx = StepContext(self.epoch, self.global_step, batch, target, cand, z_t, z_s, loss)
        for part in self.parts:
            part.on_step(self, ctx)
        self._apply(loss, ctx.updates)
        for part in self.parts:
            part.on_step_end(self, ctx)
        logs = dict(ctx.logs)
        logs["loss"] = float(loss.detach())
        return logs

    def teacher_distill_scale(self) -> float:
        """The teacher's distillation scale at the current step (after the warm-up:
        ``teacher_distill``; during it, linear from 0 in ``global_step``)."""
        cfg = self.config
        warm = cfg.teacher_distill_warmup_epochs * self.steps_per_epoch
        if warm <= 0 or self.global_step >= warm:
            return cfg.teacher_distill
        return cfg.teacher_distill * self.global_step / warm

    def _apply(self, loss: Tensor,
               updates: list[tuple[torch.optim.Optimizer, dict[str, Tensor]]]) -> None:
        """Backward of ``loss``, queued part updates, then the main optimiser step."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = dict(self.model.named_parameters())
        if updates:
            main = {n: p.grad for n, p in params.items()}
            for opt, grads in updates:
                for n, p in params.items():
                    p.grad = grads.get(n)
                opt.step()
            for n, p in params.items():
                p.grad = main[n]
        self.optimizer.step()

    # ---------------------------------------------------------- evaluation
    def _evaluate(self, split: str, student: bool, max_queries: int | None) -> Any:
        evaluator = self.evaluator or _default_evaluator()
        weights = self.student_weights() if student else None
        if weights is not None and self.masks is not None:
            weights = compact_view(weights, self.masks, self.units)
        with torch.no_grad():
            return evaluator(self.model, self.graph, split, weights=weights, reciprocal=True,
                             batch_size=self.config.eval_batch_size, max_queries=max_queries,
                             progress=False)

    def _validate(self, logs: dict[str, Any]) -> float:
        """Validate, record metrics in ``logs``, return the selection metric."""
        cfg = self.config
        phase = self._phase
        teacher = self._evaluate("valid", False, cfg.valid_max_queries)
        logs["teacher_valid_mrr"] = float(teacher.summary["mrr"])
        if phase in ("metasd", "finetune"):
            student = self._evaluate("valid", True, cfg.valid_max_queries)
            summary = student.summary
        else:
            summary = teacher.summary
        for key in ("mrr", "hits@1", "hits@3", "hits@10"):
            logs[f"valid_{key}"] = float(summary[key])
        return float(summary["mrr"])

    # --------------------------------------------------------- model state
    def _snapshot(self) -> dict[str, Tensor]:
        state = {f"model/{n}": p.detach().clone() for n, p in self.model.named_parameters()}
        if self.masks is not None:
            state.update({f"mask/{n}": m.clone() for n, m in self.masks.items()})
        return state

    def _restore(self, state: dict[str, Tensor]) -> None:
        with torch.no_grad():
            for n, p in self.model.named_parameters():
                p.copy_(state[f"model/{n}"].to(p.device))
        masks = {k[5:]: v.to(self.device) for k, v in state.items() if k.startswith("mask/")}
        self.masks = masks or self.masks

    # ------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path | None:
        """Write the full training state to ``checkpoint_dir`` (atomic); ``None`` without one."""
        if self.checkpoint_dir is None:
            return None
        tensors: dict[str, Tensor] = {}
        tensors.update(self._snapshot())
        if self._best_state is not None:
            tensors.update({f"best/{k}": v for k, v in self._best_state.items()})
        opt_t, opt_s = optimizer_state(self.optimizer)
        tensors.update({f"opt/{k}": v for k, v in opt_t.items()})
        tensors["rng/generator"] = self.generator.get_state()
        parts_state: dict[str, Any] = {}
        for part in self.parts:
            pt, ps = part.state_dict()
            tensors.update({f"part/{part.name}/{k}": v for k, v in pt.items()})
            parts_state[part.name] = ps
        state = {
            "epoch": self.epoch, "global_step": self.global_step, "history": self.history,
            "best_metric": self.best_metric if math.isfinite(self.best_metric) else None,
            "best_epoch": self.best_epoch, "bad_evals": self._bad_evals,
            "optimizer": opt_s, "parts": parts_state, "config": self.config.to_dict(),
            "extra": {k: (v.to_dict() if hasattr(v, "to_dict") else v)
                      for k, v in self.extra.items()},
            "has_best": self._best_state is not None,
        }
        path = save_checkpoint(self.checkpoint_dir, f"{self.epoch:05d}", tensors, state)
        for part in self.parts:
            part.on_checkpoint(self, str(path))
        return path

    def load_checkpoint(self, directory: str | Path | None = None) -> None:
        """Restore the training state saved by :meth:`save_checkpoint`.

        Args:
            directory: Checkpoint folder (default: ``checkpoint_dir``).
        """
        folder = Path(directory) if directory is not None else self.checkpoint_dir
        if folder is None:
            raise ConfigError("no checkpoint directory given")
        tensors, state = load_checkpoint(folder)
        self._check_resume_config(state.get("config"), folder)
        tensors = {k: v.to(self.device) if not k.startswith("rng/") else v
                   for k, v in tensors.items()}
        self._restore({k: v for k, v in tensors.items() if k.split("/", 1)[0] in
                       ("model", "mask")})
        if state["has_best"]:
            self._best_state = {k[5:]: v for k, v in tensors.items() if k.startswith("best/")}
        load_optimizer_state(self.optimizer, {k[4:]: v for k, v in tensors.items()
                                              if k.startswith("opt/")}, state["optimizer"])
        self.generator.set_state(tensors["rng/generator"])
        for part in self.parts:
            prefix = f"part/{part.name}/"
            part.on_fit_start(self)  # builds optimisers before their state is restored
            part.load_state_dict({k[len(prefix):]: v for k, v in tensors.items()
                                  if k.startswith(prefix)}, state["parts"].get(part.name, {}))
        self.epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        self.history = list(state["history"])
        self.best_metric = state["best_metric"] if state["best_metric"] is not None else -math.inf
        self.best_epoch = int(state["best_epoch"])
        self._bad_evals = int(state["bad_evals"])
        self.extra = dict(state.get("extra", {}))
        self._phase = self._phase_of(self.epoch)
        self._resumed = True

    def _check_resume_config(self, saved: dict[str, Any] | None, folder: Path) -> None:
        """Refuse to resume with options that would change the run's trajectory."""
        if saved is None:
            return
        saved = saved_config_values(saved)
        mine = self.config.to_dict()
        for key in sorted(set(saved) | set(mine)):
            if key in TRAINER_RESUMABLE or saved.get(key) == mine.get(key):
                continue
            raise ConfigError(
                f"checkpoint in {folder} was written with {key}={saved.get(key)!r}, this "
                f"trainer has {key}={mine.get(key)!r}: resume with the same value, or start "
                "a new run"
            )

    # ------------------------------------------------------------------ fit
    def fit(self, *, resume: bool = False) -> TrainResult:
        """Train, select the best epoch on the student's VALID MRR, evaluate valid and test.

        Args:
            resume: Continue from the checkpoint in ``checkpoint_dir`` if there is one.
        """
        cfg = self.config
        start = time.perf_counter()
        flush = cfg.flush_denormal and self.device.type == "cpu"
        if flush:
            torch.set_flush_denormal(True)
        try:
            return self._fit(resume, start)
        finally:
            if flush:
                torch.set_flush_denormal(False)

    def _fit(self, resume: bool, start: float) -> TrainResult:
        cfg = self.config
        self._resumed = False
        if resume and self.checkpoint_dir is not None and has_checkpoint(self.checkpoint_dir):
            self.load_checkpoint()
        if not self._resumed:
            self.start()
        bar = tqdm(total=self.total_epochs, initial=self.epoch, file=sys.stderr,
                   disable=not cfg.progress, desc=f"{cfg.mode}", dynamic_ncols=True)
        stopped_early = False
        try:
            while self.epoch < self.total_epochs and not self._stop:
                logs = self._run_epoch()
                bar.update(1)
                post = {"loss": f"{logs['loss']:.4f}"}
                if "sparsity" in logs:
                    post["sparsity"] = f"{logs['sparsity']:.3f}"
                last = [h for h in self.history if "valid_mrr" in h]
                if last:
                    post["valid_mrr"] = f"{last[-1]['valid_mrr']:.4f}"
                bar.set_postfix(post)
                if cfg.patience is not None and self._bad_evals >= cfg.patience \
                        and self._phase != "teacher":
                    stopped_early = True
                    break
        finally:
            bar.close()
        if cfg.mode == "oneshot" and self._phase == "teacher":  # no fine-tuning epochs
            self._enter_finetune()
        if self._best_state is not None:
            self._restore(self._best_state)
        for part in self.parts:
            part.on_fit_end(self)
        has_student = self._phase in ("metasd", "finetune")
        extra = dict(self.extra)
        teacher_valid = _as_result(extra.pop("teacher_valid", None))
        teacher_test = _as_result(extra.pop("teacher_test", None))
        result = TrainResult(
            history=self.history,
            best_epoch=self.best_epoch,
            best_valid_mrr=self.best_metric,
            teacher_valid=teacher_valid or self._evaluate("valid", False, None),
            teacher_test=teacher_test or self._evaluate("test", False, None),
            student_valid=self._evaluate("valid", True, None) if has_student else None,
            student_test=self._evaluate("test", True, None) if has_student else None,
            config=cfg,
            extra={k: _as_result(v) for k, v in extra.items()},
            wall_time=time.perf_counter() - start,
            stopped_early=stopped_early,
        )
        return result

    def _run_epoch(self) -> dict[str, Any]:
        cfg = self.config
        epoch = self.epoch
        if self._phase_of(epoch) != self._phase:
            self._enter_finetune()
        t0 = time.perf_counter()
        for part in self.parts:
            part.on_epoch_start(self, epoch)
        self.model.train()
        n = self.stream.size(0)
        perm = torch.randperm(n, generator=self.generator).to(self.device)
        sums: dict[str, float] = {}
        steps = 0
        for i in range(0, n, cfg.batch_size):
            batch = self.stream[perm[i:i + cfg.batch_size]]
            step_logs = self.train_step(batch)
            for k, v in step_logs.items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
        self.epoch = epoch + 1
        logs: dict[str, Any] = {"epoch": self.epoch, "phase": self._phase,
                                "steps": steps, "time": time.perf_counter() - t0}
        logs.update({k: v / max(1, steps) for k, v in sums.items()})
        if self.masks is not None:
            logs["sparsity"] = 1.0 - mask_density(self.masks)
        if self.epoch % cfg.eval_every == 0 or self.epoch == self.total_epochs \
                or (cfg.mode == "oneshot" and self.epoch == cfg.epochs):
            metric = self._validate(logs)
            if metric > self.best_metric:
                self.best_metric = metric
                self.best_epoch = self.epoch
                self._best_state = self._snapshot()
                self._bad_evals = 0
            else:
                self._bad_evals += 1
            for part in self.parts:
                part.on_evaluate(self, self.epoch, {k: v for k, v in logs.items()
                                                    if k.startswith(("valid_", "teacher_valid"))})
        for part in self.parts:
            part.on_epoch_end(self, self.epoch, logs)
        logs["time_total"] = time.perf_counter() - t0
        self.history.append(logs)
        if self.checkpoint_dir is not None and (self.epoch % cfg.checkpoint_every == 0
                                                or self.epoch == self.total_epochs):
            self.save_checkpoint()
        return logs

    def _enter_finetune(self) -> None:
        """One-shot mode: restore the best teacher, prune it once, reset the optimiser."""
        cfg = self.config
        if self._best_state is not None:
            self._restore(self._best_state)
        # the trained teacher as it is before pruning (fine-tuning changes its kept weights)
        self.extra["teacher_valid"] = self._evaluate("valid", False, None)
        self.extra["teacher_test"] = self._evaluate("test", False, None)
        assert self.pruner is not None
        with torch.no_grad():
            masks = self.pruner.compute(self.model, degree=self.graph.stats.degree.to(self.device),
                                        sparsity=cfg.sparsity)
        self.masks = {k: v.to(device=self.device, dtype=torch.bool) for k, v in masks.items()}
        self._phase = "finetune"
        self.optimizer = make_optimizer(cfg.optimizer, self.model.parameters(), cfg.lr)
        valid = self._evaluate("valid", True, None)
        test = self._evaluate("test", True, None)
        self.extra["oneshot_valid"] = valid
        self.extra["oneshot_test"] = test
        self.best_metric = float(valid.summary["mrr"])
        self.best_epoch = self.epoch
        self._best_state = self._snapshot()
        self._bad_evals = 0

    def request_stop(self) -> None:
        """Ask the trainer to stop after the current epoch (for callbacks)."""
        self._stop = True
