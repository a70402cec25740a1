r"""The trainer: one step shape over built parts (objective, optimiser, hooks).

Paper: Li, Liu, Yang, Li, "Self-Distillation with Meta Learning for Knowledge
Graph Completion", Findings of EMNLP 2022,
https://aclanthology.org/2022.findings-emnlp.149/.

One step: the objective (:mod:`metasd_pyg.training.objective`) computes the
loss and logits of a batch; the parts' ``on_step`` hooks run (the meta step
queues its teacher update there); one backward pass; the queued updates and
the main optimiser step; the parts' ``on_step_end`` hooks (step-scheduled
mask recomputation). With the mutual objective one backward pass of
:math:`L = L_T + a_S L_S` gives
:math:`\nabla_\theta L = \nabla_\theta L_T + a_S M \odot \nabla_{\tilde\theta} L_S`,
exactly the sum of the official code's two backward passes (its student
forward sees the same, not yet updated, parameters).

The trainer knows no modes: the dense teacher, the same-non-zeros dense
model, MetaSD and one-shot pruning are compositions of parts built by
:mod:`metasd_pyg.training.recipes`. It selects the epoch on the valid MRR of
the student if its objective scores one (else of the model), checkpoints
atomically and resumes exactly.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch_geometric.nn.kge import KGEModel
from tqdm.auto import tqdm

from metasd_pyg.data.graph import KnowledgeGraph
from metasd_pyg.errors import ConfigError, TrainingDiverged
from metasd_pyg.models.adapters import ENTITY_TABLES
from metasd_pyg.models.config import ModelConfig
from metasd_pyg.pruning import NestedMasks, mask_density
from metasd_pyg.training.callbacks import Callback, StepContext
from metasd_pyg.training.checkpoint import TrainingState, has_checkpoint
from metasd_pyg.training.distributed import World
from metasd_pyg.training.engine import Engine, TableView, engine_for
from metasd_pyg.training.huge_pages import huge_page_copy
from metasd_pyg.training.objective import Objective
from metasd_pyg.training.optim import OptimConfig
from metasd_pyg.training.result import TrainResult
from metasd_pyg.training.runtime import resolve_device
from metasd_pyg.training.selection import Evaluator, Selection, restore
from metasd_pyg.training.stream import split_stream
from metasd_pyg.training.views import active_units, student_weights

if TYPE_CHECKING:
    from metasd_pyg.training.config import MetaSDConfig

__all__ = ["Trainer"]

class Trainer:
    r"""Train a PyG KGE model with built parts; select on valid MRR; checkpoint and resume.

    Build one with :func:`metasd_pyg.training.recipes.compose` (from a
    configuration) or :func:`metasd_pyg.training.MetaSD`; construct it directly
    to plug in parts of your own.

    Args:
        model: A reciprocal PyG KGE model (``2 R`` relation rows).
        graph: The knowledge graph (train / valid / test).
        objective: What a step minimises (:mod:`metasd_pyg.training.objective`).
        optimizer: The main optimiser over ``model``'s parameters.
        config: The run's configuration; the trainer reads its own sections
            (``trainer``, ``eval``, ``runtime``) and records, in :attr:`config`,
            the sections its objective, optimiser and parts report.
        parts: Trainer parts and user callbacks, called in order
            (:class:`~metasd_pyg.training.dynamic.DynamicPruning`,
            :class:`~metasd_pyg.training.meta.MetaStep`, ...).
        checkpoint_dir: Folder for atomic checkpoints (``None`` = no checkpoints).
        device: Overrides ``config.runtime.device``.
        evaluator: Evaluation function (default :func:`metasd_pyg.evaluation.evaluate`).
        phase: Label of the trainer's epochs in the history and progress bar.
        epochs: Epoch count at which the loop ends (default ``config.trainer.epochs``).
        engine: How steps see the tables (:mod:`metasd_pyg.training.engine`;
            default: from the configuration, row-wise for ``loss="sampled"``).
        world: The processes of a data-parallel run
            (:class:`~metasd_pyg.training.distributed.World`; default: this
            process alone). Each rank computes its shard of every batch; only
            rank 0 validates, checkpoints and shows progress.
    """

    def __init__(
        self,
        model: KGEModel,
        graph: KnowledgeGraph,
        objective: Objective,
        optimizer: torch.optim.Optimizer,
        *,
        config: MetaSDConfig | None = None,
        parts: Sequence[Callback] = (),
        checkpoint_dir: str | Path | None = None,
        device: str | torch.device | None = None,
        evaluator: Evaluator | None = None,
        phase: str = "train",
        epochs: int | None = None,
        engine: Engine | None = None,
        world: World | None = None,
    ) -> None:
        from metasd_pyg.training.config import MetaSDConfig

        base = config if config is not None else MetaSDConfig(model=ModelConfig.of(model))
        R = graph.num_relations
        if not base.model.reciprocal:
            raise ConfigError("reciprocal=False is not supported by the trainer (head queries "
                              "are trained as reciprocal tail queries)")
        if model.num_relations != 2 * R:
            raise ConfigError(f"model has {model.num_relations} relation rows; the trainer needs a "
                              f"reciprocal model with 2 x {R} (build_model(..., reciprocal=True))")
        self.graph = graph
        #: The ranks of a data-parallel run (one process by default).
        self.world = world if world is not None else World.single()
        self.objective = objective
        self.optimizer = optimizer
        self.parts: list[Callback] = list(parts)
        #: The configuration that runs: every part's own section.
        self.config: MetaSDConfig = base.with_sections(
            OptimConfig.of(optimizer), *objective.sections(),
            *(s for p in self.parts for s in p.sections()))
        #: Whole tables or gathered rows per step.
        self.engine: Engine = engine if engine is not None else engine_for(self.config)
        self.engine.check_optimizer(optimizer)
        self.device = resolve_device(device if device is not None else base.runtime.device)
        if base.runtime.threads is not None:
            torch.set_num_threads(base.runtime.threads)
        self.model = model.to(self.device)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.phase = phase
        self.end_epoch = base.trainer.epochs if epochs is None else epochs
        # Random state of everything the run samples (shuffling, quiz, negatives).
        self.generator = torch.Generator().manual_seed(base.trainer.seed)
        split = split_stream(graph, self.parts, base.trainer.seed, self.device)
        #: ``[N, 3]`` reciprocal training stream, held-out quiz slice and its train indices.
        self.stream, self.quiz_triples, self.quiz_index = split.stream, split.quiz, split.quiz_index
        #: Batches per epoch.
        self.steps_per_epoch = split.steps(base.trainer.batch_size)
        self._masks: dict[str, Tensor] | None = None
        self.units: Tensor | None = None
        #: Nested structure of the current masks, if they are nested (row masks from lengths).
        self.nested: NestedMasks | None = None
        # Progress of the run (all checkpointed).
        self.epoch = 0
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        #: Validation and the best epoch so far.
        self.selection = Selection(base.eval, evaluator)
        self.extra: dict[str, Any] = {}
        self._stop = False
        self._resumed = False
        #: Seconds of every optimisation step of this process (not checkpointed).
        self.step_times: list[float] = []
        #: Whether ``max_steps`` ended the run (inside an epoch or at its end).
        self.reached_max_steps = False

    def part(self, kind: type[Callback]) -> Any:
        """The first part of class ``kind`` (``MetaStep``, ``DynamicPruning``, ...; or ``None``).

        Args:
            kind: A part class.
        """
        return next((p for p in self.parts if isinstance(p, kind)), None)

    @property
    def masks(self) -> dict[str, Tensor] | None:
        """The student's current masks (parameter name -> bool, ``True`` = kept)."""
        return self._masks

    @masks.setter
    def masks(self, value: dict[str, Tensor] | None) -> None:
        self._masks = value
        self.nested = None
        # columns the student's entity scores use (views.compact_view); None = all
        self.units = (active_units(self.model, value)
                      if value is not None and self.config.trainer.compact_student else None)

    def set_masks(self, masks: dict[str, Tensor], nested: NestedMasks | None = None) -> None:
        """Set :attr:`masks` and, for nested masks, their structure (order, prefix lengths).

        Args:
            masks: Parameter name -> bool mask (``True`` = kept).
            nested: The same masks as a :class:`~metasd_pyg.pruning.nested.NestedMasks`
                (the row-wise engine then builds row masks from the prefix lengths).
        """
        self.masks = masks
        self.nested = nested

    def row_masks(self, rows: Tensor) -> dict[str, Tensor] | None:
        """The masks of entity rows ``rows`` (relation tables whole); ``None`` without masks.

        From the prefix lengths when the masks are nested
        (:meth:`~metasd_pyg.pruning.nested.NestedMasks.row_masks`), else rows
        of the stored masks.

        Args:
            rows: ``[U]`` entity ids.
        """
        if self._masks is None:
            return None
        if self.nested is not None:
            return self.nested.row_masks(rows, ENTITY_TABLES)
        return {n: m.index_select(0, rows) if n in ENTITY_TABLES else m
                for n, m in self._masks.items()}

    def student_weights(self) -> dict[str, Tensor] | None:
        """The student's (masked) parameters, detached; ``None`` without a student."""
        if self.masks is None:
            return None
        return student_weights({n: p.detach() for n, p in self.model.named_parameters()},
                               self.masks)

    # ---------------------------------------------------------------- step
    def start(self) -> None:
        """Run the parts' ``on_fit_start`` hooks (first masks, meta optimiser).

        :meth:`fit` calls it (unless it resumes from a checkpoint); call it
        yourself before driving :meth:`train_step` from your own loop.
        """
        self.world.broadcast_tensors(list(self.model.parameters()), "the start of training")
        for part in self.parts:
            part.on_fit_start(self)
        self._place_tables()

    def _place_tables(self) -> None:
        """Large entity tables and their optimiser state onto huge pages (row-wise engine,
        CPU, ``runtime.huge_pages``; :mod:`~metasd_pyg.training.huge_pages`). Values unchanged."""
        if not (self.engine.sparse and self.config.runtime.huge_pages
                and self.device.type == "cpu"):
            return
        params = dict(self.model.named_parameters())
        tables = [params[n] for n in ENTITY_TABLES if n in params]
        for p in tables:
            p.data = huge_page_copy(p.data)
        for opt in self.optimizers():
            for p in tables:
                state = opt.state.get(p, {})
                for key, value in state.items():
                    if isinstance(value, Tensor) and value.shape == p.shape:
                        state[key] = huge_page_copy(value)

    def train_step(self, batch: Tensor) -> dict[str, float]:
        """One optimisation step on ``batch`` (``[B, 3]`` stream rows) and ``global_step += 1``.

        Args:
            batch: ``[B, 3]`` rows of the reciprocal training stream
                (:attr:`stream`), on the trainer's device.

        Returns:
            The step's scalar logs (``loss``, and ``quiz_loss`` on meta steps). In
            a data-parallel run ``loss`` is this rank's share, ``n_r / B`` times
            its shard's loss (the ranks' shares sum to the batch's loss).

        With several ranks (:attr:`world`) every rank passes the same global
        batch; each scores its shard (:meth:`~.distributed.World.shard`)
        against the whole batch's candidates and the gradients are summed.
        """
        if batch.dim() != 2 or batch.size(0) == 0 or batch.size(1) != 3:
            raise ValueError(f"train_step needs a non-empty [B, 3] batch, got {tuple(batch.shape)}")
        cand, target = self.objective.candidates(batch, self.graph.num_entities, self.generator)
        shard = self.world.shard(batch.size(0))
        mine, mine_target = batch[shard], target[shard]
        share = mine.size(0) / batch.size(0)
        if mine.size(0):
            # several ranks: every rank's view holds the rows of the whole batch, so
            # their gradients have the same rows (summed by one dense all-reduce)
            cover = batch[:, [0, 2]] if self.world.distributed else None
            view = self.engine.view(self, [mine], [cand], [mine_target], cover=cover)[0]
            out = self.objective(self, view)
            loss = out.loss * share if share != 1.0 else out.loss
            teacher_logits, student_logits = out.teacher_logits, out.student_logits
        else:  # more ranks than rows: this rank only joins the reduction
            view, loss = None, torch.zeros((), device=batch.device)
            teacher_logits, student_logits = torch.empty(0, 0), None
        ctx = StepContext(self.epoch, self.global_step, batch, target, cand,
                          teacher_logits, student_logits, loss, shard=shard)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            self._diverged(f"the loss is {loss_value}", _logits_term(teacher_logits,
                                                                     student_logits))
        for part in self.parts:
            part.on_step(self, ctx)
        self._apply(loss, ctx.updates, view)
        for part in self.parts:
            part.on_step_end(self, ctx)
        logs = dict(ctx.logs)
        logs["loss"] = loss_value
        self.global_step += 1
        return logs

    def _apply(self, loss: Tensor,
               updates: list[tuple[torch.optim.Optimizer, dict[str, Tensor]]],
               view: TableView | None) -> None:
        """Backward of ``loss``, the ranks' gradient sum, queued part updates, then the
        main optimiser step."""
        self.optimizer.zero_grad(set_to_none=True)
        if view is not None:
            loss.backward()
            self.engine.scatter(self, view)
        self.world.reduce_gradients(self.model.parameters())
        params = dict(self.model.named_parameters())
        self._check_grads({n: p.grad for n, p in params.items()}, "the gradient of")
        for opt, grads in updates:
            self._check_grads(grads, f"the {type(opt).__name__} update queued by a part "
                                     "(the meta step's meta-gradient) for")
        with self.engine.stepping():
            if updates:
                main = {n: p.grad for n, p in params.items()}
                for opt, grads in updates:
                    for n, p in params.items():
                        p.grad = grads.get(n)
                    opt.step()
                for n, p in params.items():
                    p.grad = main[n]
            self.optimizer.step()

    # ------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path | None:
        """Write the full training state to ``checkpoint_dir`` (atomic); ``None`` without one
        and on every rank but 0."""
        if self.checkpoint_dir is None or not self.world.is_main:
            return None
        path = TrainingState.of(self).save(self.checkpoint_dir)
        for part in self.parts:
            part.on_checkpoint(self, str(path))
        return path

    def load_checkpoint(self, directory: str | Path | None = None) -> None:
        """Restore the training state saved by :meth:`save_checkpoint`.

        Args:
            directory: Checkpoint folder (default: ``checkpoint_dir``).

        Raises:
            ConfigError: The checkpoint was written with options that would
                change this run's trajectory (:func:`~metasd_pyg.training.checkpoint.check_resume`).
        """
        folder = Path(directory) if directory is not None else self.checkpoint_dir
        if folder is None:
            raise ConfigError("no checkpoint directory given")
        TrainingState.read(folder).restore(self, where=f"checkpoint in {folder}")
        self._place_tables()
        self._resumed = True

    # ------------------------------------------------------------------ fit
    def fit(self, *, resume: bool = False) -> TrainResult:
        """Train, select the best epoch on valid MRR, evaluate valid and test.

        Args:
            resume: Continue from the checkpoint in ``checkpoint_dir`` if there is one.
        """
        with self.config.runtime.scope(self.device):
            return self._fit(resume, time.perf_counter())

    def _fit(self, resume: bool, start: float) -> TrainResult:
        if resume and self.checkpoint_dir is not None and has_checkpoint(self.checkpoint_dir):
            self.load_checkpoint()
        if not self._resumed:
            self.start()
        patience = self.config.trainer.patience
        total = self.end_epoch
        max_steps = self.config.trainer.max_steps
        if max_steps is not None:  # the epochs max_steps reaches (the last one maybe partial)
            total = min(total, self.epoch + math.ceil(
                max(0, max_steps - self.global_step) / max(1, self.steps_per_epoch)))
        bar = tqdm(total=total, initial=self.epoch, file=sys.stderr,
                   disable=not (self.config.runtime.progress and self.world.is_main),
                   desc=self.phase, dynamic_ncols=True)
        stopped_early = False
        try:
            while self.epoch < self.end_epoch and not self._stop:
                logs = self._run_epoch()
                bar.update(1)
                bar.set_postfix(_postfix(logs, self.history))
                if patience is not None and self.selection.bad_evals >= patience:
                    stopped_early = True
                    break
        finally:
            bar.close()
        if self.selection.best_state is not None and self.world.is_main:
            restore(self, self.selection.best_state)
        for part in self.parts:
            part.on_fit_end(self)
        # the final evaluation is rank 0's (the others hold no selected state)
        evaluate = ((self.config.trainer.final_eval or not self.reached_max_steps)
                    and self.world.is_main)
        return TrainResult.collect(self, wall_time=time.perf_counter() - start,
                                   stopped_early=stopped_early, evaluate=evaluate)

    def _run_epoch(self) -> dict[str, Any]:
        cfg = self.config
        epoch = self.epoch
        t0 = time.perf_counter()
        for part in self.parts:
            part.on_epoch_start(self, epoch)
        self.model.train()
        n = self.stream.size(0)
        perm = torch.randperm(n, generator=self.generator).to(self.device)
        sums: dict[str, float] = {}
        steps = 0
        bs = cfg.trainer.batch_size
        max_steps = cfg.trainer.max_steps
        first = len(self.step_times)
        partial = False
        # the steps of a long epoch (ogbl-wikikg2: 32k steps, 20+ min); shown after 2 s
        steps_bar = tqdm(total=self.steps_per_epoch, file=sys.stderr, leave=False,
                         desc=f"{self.phase} epoch {epoch + 1}", unit="step", delay=2.0,
                         mininterval=1.0, dynamic_ncols=True,
                         disable=not (cfg.runtime.progress and self.world.is_main))
        try:
            for i in range(0, n, bs):
                if max_steps is not None and self.global_step >= max_steps:
                    partial = True
                    break
                t_step = time.perf_counter()
                for k, v in self.train_step(self.stream[perm[i:i + bs]]).items():
                    sums[k] = sums.get(k, 0.0) + v
                self.step_times.append(time.perf_counter() - t_step)
                steps += 1
                steps_bar.update(1)
        finally:
            steps_bar.close()
        if max_steps is not None and self.global_step >= max_steps:
            self.reached_max_steps = True
            self._stop = True
        if self.world.distributed and "loss" in sums:  # the ranks' shares of the loss
            sums["loss"] = self.world.sum_floats([sums["loss"]])[0]
        logs: dict[str, Any] = {"epoch": epoch + 1, "phase": self.phase,
                                "steps": steps, "time": time.perf_counter() - t0}
        logs.update({k: v / max(1, steps) for k, v in sums.items()})
        if steps:
            logs["step_seconds_median"] = statistics.median(self.step_times[first:])
        if partial:
            # max_steps ended the epoch early: recorded, never validated or checkpointed
            # (a checkpoint marks a finished epoch, so that a resume is exact)
            logs["partial"] = True
            logs["time_total"] = time.perf_counter() - t0
            self.history.append(logs)
            return logs
        self.epoch = epoch + 1
        self._check_weights()  # never validated, selected or checkpointed if not finite
        if self.masks is not None:
            logs["sparsity"] = 1.0 - mask_density(self.masks)
        if self.epoch % cfg.eval.every == 0 or self.epoch == self.end_epoch:
            self._validate(logs)
            for part in self.parts:
                part.on_evaluate(self, self.epoch, {k: v for k, v in logs.items()
                                                    if k.startswith(("valid_", "teacher_valid"))})
        for part in self.parts:
            part.on_epoch_end(self, self.epoch, logs)
        check = self.config.distributed.check_every
        if self.world.distributed and check and self.epoch % check == 0:
            self.world.check_identical(
                {n: p.detach() for n, p in self.model.named_parameters()},
                f"after epoch {self.epoch}")
        logs["time_total"] = time.perf_counter() - t0
        self.history.append(logs)
        if self.checkpoint_dir is not None and (self.epoch % cfg.trainer.checkpoint_every == 0
                                                or self.epoch == self.end_epoch):
            self.save_checkpoint()
        return logs

    def _validate(self, logs: dict[str, Any]) -> None:
        """Validate and consider the epoch for selection: rank 0 does it, then every rank
        gets its validation record and early-stopping count."""
        if self.world.is_main:
            self.selection.consider(self, self.selection.validate(self, logs))
        if self.world.distributed:
            valid = {k: v for k, v in logs.items() if k.startswith(("valid_", "teacher_valid"))}
            valid, bad = self.world.broadcast_object((valid, self.selection.bad_evals),
                                                     "rank 0's validation")
            logs.update(valid)
            self.selection.bad_evals = bad

    def _check_grads(self, grads: Mapping[str, Tensor | None], what: str) -> None:
        """Stop (:meth:`_diverged`) on a non-finite gradient; one sum per tensor."""
        named = [(n, g._values() if g.is_sparse else g) for n, g in grads.items()
                 if g is not None]
        if not named:
            return
        sums = torch.stack([v.sum() for _, v in named])
        if bool(torch.isfinite(sums).all()):
            return
        bad = next(n for (n, _), s in zip(named, sums.tolist()) if not math.isfinite(s))
        self._diverged(f"{what} {bad} is not finite", "")

    def _check_weights(self) -> None:
        """Stop (:meth:`_diverged`) if a weight became non-finite during the epoch."""
        for n, p in self.model.named_parameters():
            if not bool(torch.isfinite(p.detach().sum())):
                self._diverged(f"the weights of {n} are not finite after epoch {self.epoch}",
                               "")

    def _diverged(self, what: str, term: str) -> None:
        """Raise :class:`~metasd_pyg.errors.TrainingDiverged` naming the step, the term,
        the likely cause and the checkpoint that is kept."""
        owner = {id(getattr(p, "optimizer", None)): f"{p.name} " for p in self.parts}
        lrs = [f"{owner.get(id(o), '')}lr={o.param_groups[0]['lr']:g}" for o in self.optimizers()]
        kept = "no checkpoint yet"
        if self.checkpoint_dir is not None and has_checkpoint(self.checkpoint_dir):
            kept = (f"the last good checkpoint (the end of epoch {self.epoch_of_checkpoint()}) "
                    f"is kept in {self.checkpoint_dir}")
        raise TrainingDiverged(
            f"training diverged at step {self.global_step + 1} (epoch {self.epoch + 1}): "
            f"{what}{term}; the likely cause is a learning rate too high for this model and "
            f"batch ({', '.join(lrs)}): lower it (or the regulariser weight); {kept}")

    def epoch_of_checkpoint(self) -> int | None:
        """Epoch of the committed checkpoint in ``checkpoint_dir`` (``None``: none)."""
        from metasd_pyg.training.checkpoint import checkpoint_json

        if self.checkpoint_dir is None or not has_checkpoint(self.checkpoint_dir):
            return None
        return int(checkpoint_json(self.checkpoint_dir)["state"]["epoch"])

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """The main optimiser, then those of parts that have their own (the meta step's)."""
        found = [self.optimizer]
        for part in self.parts:
            opt = getattr(part, "optimizer", None)
            if isinstance(opt, torch.optim.Optimizer):
                found.append(opt)
        return found

    def request_stop(self) -> None:
        """Ask the trainer to stop after the current epoch (for callbacks)."""
        self._stop = True


def _logits_term(teacher: Tensor, student: Tensor | None) -> str:
    """Which scores of a step are not finite (a clue to the term that diverged)."""
    bad = [name for name, z in (("the teacher's (or the model's)", teacher),
                                ("the student's", student))
           if z is not None and z.numel() and not bool(torch.isfinite(z).all())]
    if bad:
        return f" ({' and '.join(bad)} scores are not finite)"
    return " (the scores are finite: a regulariser or distillation term diverged)"


def _postfix(logs: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, str]:
    """Progress-bar fields of an epoch: loss, sparsity, last valid MRR."""
    post = {"loss": f"{logs['loss']:.4f}"}
    if "sparsity" in logs:
        post["sparsity"] = f"{logs['sparsity']:.3f}"
    last = [h for h in history if "valid_mrr" in h]
    if last:
        post["valid_mrr"] = f"{last[-1]['valid_mrr']:.4f}"
    return post
