"""Hooks of the trainer: the :class:`Callback` protocol and the per-step context.

The parts of MetaSD (dynamic pruning, the one-step meta update) and user
callbacks (logging, custom stopping) all plug into the same hooks of
:class:`~metasd_pyg.training.trainer.Trainer`; nothing subclasses the trainer.

Order of the hooks in one step: the trainer computes the forwards and the
mutual loss, calls :meth:`Callback.on_step` (parts may compute extra gradients
from the retained graph and queue parameter updates with
:meth:`StepContext.add_update`; they must not modify parameters there), runs
the backward pass of the mutual loss, applies the queued updates (each with
its own optimiser) and finally its main optimiser step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import Tensor
from torch.optim import Optimizer

if TYPE_CHECKING:
    from metasd_pyg.sections import Section
    from metasd_pyg.training.trainer import Trainer


@dataclass
class StepContext:
    """What one training step computed, handed to :meth:`Callback.on_step`.

    Attributes:
        epoch: Current epoch (0-based).
        step: Global step (0-based, counted over all epochs).
        batch: ``[B, 3]`` rows ``(h, r, t)`` of the reciprocal training stream.
        target: ``[B]`` column of each row's answer in the logits.
        candidates: Shared candidate ids ``[C]`` (sampled loss) or ``None`` (1-N).
        teacher_logits: ``[B, C]`` teacher scores (graph kept).
        student_logits: ``[B, C]`` student scores (graph kept) or ``None``.
        loss: The mutual loss (graph kept until the backward pass).
        logs: Scalars to record in the history (parts may add entries).
        updates: Queued ``(optimizer, gradients)`` pairs, applied after the
            backward pass of ``loss`` and before the main optimiser step.
        shard: Rows of ``batch`` (and ``target``) this process scored: the
            logits' rows (all of them unless the run is data-parallel,
            :mod:`~metasd_pyg.training.distributed`). ``batch``, ``target`` and
            ``candidates`` are the whole step's, the same on every rank.
    """

    epoch: int
    step: int
    batch: Tensor
    target: Tensor
    candidates: Tensor | None
    teacher_logits: Tensor
    student_logits: Tensor | None
    loss: Tensor
    logs: dict[str, float] = field(default_factory=dict)
    updates: list[tuple[Optimizer, dict[str, Tensor]]] = field(default_factory=list)
    shard: slice = field(default_factory=lambda: slice(None))

    def add_update(self, optimizer: Optimizer, grads: dict[str, Tensor]) -> None:
        """Queue ``optimizer.step()`` with ``grads`` (param name -> gradient) as gradients.

        Args:
            optimizer: An optimiser over (some of) the model's parameters.
            grads: Gradients by parameter name; missing names get no update.
        """
        self.updates.append((optimizer, grads))


class Callback:
    """Base class of trainer hooks; every method is a no-op by default.

    Parts that carry state across a checkpoint implement :meth:`state_dict`
    and :meth:`load_state_dict` (tensors go to safetensors, the rest to JSON).
    """

    #: Name under which the part's state is stored in checkpoints.
    name: str = "callback"

    def sections(self) -> tuple[Section, ...]:
        """The configuration sections the part runs with (recorded in the run's config)."""
        return ()

    def held_out(self, train: Tensor, seed: int) -> Tensor | None:
        """Indices of training triples the part keeps out of the training stream (or ``None``).

        Args:
            train: ``[N, 3]`` training triples of the graph.
            seed: The run's seed.
        """
        return None

    def on_fit_start(self, trainer: Trainer) -> None:
        """Called once before the first epoch (also when resuming)."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Called at the start of every epoch, before its first step."""

    def on_step(self, trainer: Trainer, ctx: StepContext) -> None:
        """Called after the forwards of a step, before its backward pass."""

    def on_step_end(self, trainer: Trainer, ctx: StepContext) -> None:
        """Called after the optimiser steps of a step (parameters updated)."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        """Called at the end of every epoch with the epoch's history record."""

    def on_evaluate(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        """Called after each validation with the (flat) validation metrics."""

    def on_checkpoint(self, trainer: Trainer, path: str) -> None:
        """Called after a checkpoint has been written to ``path``."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """Called once after training (best weights restored, before final evaluation)."""

    def state_dict(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """``(tensors, json_state)`` to checkpoint; empty by default."""
        return {}, {}

    def load_state_dict(self, tensors: dict[str, Tensor], state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class ReleaseOptimizerState(Callback):
    """Free the optimisers' state when training ends, before the final evaluation.

    Adagrad's accumulators (and Adam's moments) are as large as the model: 2.0 GB
    each at ogbl-wikikg2 size, 4.0 GB with the meta step's own optimiser. Once the
    last checkpoint is written and training is over, a run that only evaluates,
    exports and reports no longer needs them. The trainer's optimisers cannot step
    afterwards; do not add this part if you train further with the same trainer.
    """

    name = "release_optimizer_state"

    def on_fit_end(self, trainer: Trainer) -> None:
        """Clear the main optimiser's state and that of every part's optimiser."""
        for opt in trainer.optimizers():
            opt.state.clear()
