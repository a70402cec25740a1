r"""Dynamic pruning as a trainer part: recompute the student's masks on a schedule.

The masks are computed by a :class:`metasd_pyg.pruning.Pruner` from the
current teacher weights (and the train degrees for degree-aware masks) at
the start of training and then whenever the
:class:`metasd_pyg.pruning.PruningSchedule` says so (every epoch by default,
or every N steps, optionally ramping the sparsity up). The share of mask
entries that changed at each recompute (mask churn) is logged and recorded
in the epoch's history record.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor
from torch_geometric.nn.kge import KGEModel

from metasd_pyg.pruning import NestedMasks, mask_churn, mask_density
from metasd_pyg.training.callbacks import Callback, StepContext

if TYPE_CHECKING:
    from metasd_pyg.sections import Section
    from metasd_pyg.training.trainer import Trainer

log = logging.getLogger(__name__)


class MaskComputer(Protocol):
    """What the trainer needs of a pruner (satisfied by :class:`metasd_pyg.pruning.Pruner`)."""

    def compute(
        self, model: KGEModel, degree: Tensor | None = None, sparsity: float | None = None
    ) -> dict[str, Tensor]:
        """Masks of ``model``'s current weights."""
        ...


class Schedule(Protocol):
    """What the trainer needs of a schedule (e.g. :class:`metasd_pyg.pruning.PruningSchedule`)."""

    def sparsity_at(self, epoch: int, step: int) -> float:
        """Sparsity to prune to at ``(epoch, step)``."""
        ...

    def due(self, epoch: int, step: int) -> bool:
        """Whether masks are recomputed at ``(epoch, step)``."""
        ...


class DynamicPruning(Callback):
    """Recompute ``trainer.masks`` from the current weights on a schedule.

    ``due(epoch, step)`` is asked before every batch, ``step`` being the
    0-based batch index within the epoch (as in ``PruningSchedule``).

    Args:
        pruner: Computes masks from the model (``Pruner``).
        schedule: When and to which sparsity (``PruningSchedule``).
        degree: ``[E]`` train degree of every entity (degree-aware masks).
    """

    name = "pruning"

    def __init__(self, pruner: MaskComputer, schedule: Schedule, degree: Tensor | None) -> None:
        self.pruner = pruner
        self.schedule = schedule
        self.degree = degree
        self._churns: list[float] = []
        self._step_in_epoch = 0

    def sections(self) -> tuple[Section, ...]:
        """The pruner's and the schedule's sections (those that report one)."""
        found = (getattr(self.pruner, "config", None), getattr(self.schedule, "config", None))
        return tuple(s for s in found if s is not None)

    def recompute(self, trainer: Trainer, epoch: int, step: int) -> float | None:
        """Recompute the masks now; return the churn (``None`` for the first masks)."""
        sparsity = float(self.schedule.sparsity_at(epoch, step))
        with torch.no_grad():
            new = self.pruner.compute(trainer.model, degree=self.degree, sparsity=sparsity)
        new = {k: v.to(device=trainer.device, dtype=torch.bool) for k, v in new.items()}
        old = trainer.masks
        # nested masks: keep their structure too (row masks from the prefix lengths)
        nested = getattr(self.pruner, "last_nested", None)
        if nested is not None:
            nested = NestedMasks(nested.order.to(trainer.device),
                                 {g: k.to(trainer.device) for g, k in nested.k.items()},
                                 nested.tables)
        trainer.set_masks(new, nested)
        if old is None:
            log.info("masks computed: sparsity %.4f", 1.0 - mask_density(new))
            return None
        churn = mask_churn(old, new)
        self._churns.append(churn)
        log.info("masks recomputed at epoch %d step %d: sparsity %.4f, churn %.5f",
                 epoch, step, 1.0 - mask_density(new), churn)
        return churn

    def on_fit_start(self, trainer: Trainer) -> None:
        """Compute the first masks (unless restored from a checkpoint)."""
        if trainer.masks is None:
            self.recompute(trainer, trainer.epoch, 0)

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Recompute at the epoch start when due (never at the very first start: just done)."""
        self._churns = []
        self._step_in_epoch = 0
        if trainer.global_step > 0 and self.schedule.due(epoch, 0):
            self.recompute(trainer, epoch, 0)

    def on_step_end(self, trainer: Trainer, ctx: StepContext) -> None:
        """Recompute before the next batch of the epoch when the schedule says so."""
        self._step_in_epoch += 1
        s = self._step_in_epoch
        if s < trainer.steps_per_epoch and self.schedule.due(ctx.epoch, s):
            self.recompute(trainer, ctx.epoch, s)

    def state_dict(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The pruner's own state, if it has one (e.g. the previous unit order)."""
        state = getattr(self.pruner, "state_dict", None)
        return (dict(state()) if callable(state) else {}), {}

    def load_state_dict(self, tensors: dict[str, Tensor], state: dict[str, Any]) -> None:
        """Restore the pruner's state."""
        load = getattr(self.pruner, "load_state_dict", None)
        if callable(load):
            load(tensors)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        """Record the epoch's churn (mean over recomputes); the trainer records the sparsity."""
        if self._churns:
            logs["mask_churn"] = sum(self._churns) / len(self._churns)
            logs["mask_recomputes"] = len(self._churns)
