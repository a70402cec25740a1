r"""How a training step sees the embedding tables: whole tables, or only the rows it touches.

With the 1-N loss every step scores every entity, so it reads and updates
whole tables: the **dense engine** (:class:`DenseEngine`) hands the model's
parameters to the objective, and autograd writes dense gradients.

With sampled candidates (``loss="sampled"``) a step touches only the
entities of its batch (heads and tails) and its shared candidates (the
batch's tails plus the negatives), a few thousand rows whatever the size of
the graph. The **row-wise engine** (:class:`RowEngine`) gathers those rows
of every entity table into small leaf tensors,

.. math::
    \mathcal U = \operatorname{unique}(h \cup t \cup c), \qquad
    \hat E = E[\mathcal U] \in \mathbb R^{|\mathcal U| \times d},

re-indexes the batch and the candidates into :math:`\hat E`, and lets the
objective compute on :math:`\hat E` (teacher logits, the student's masked
rows :math:`\hat E \odot M[\mathcal U]`, regularisers, distillation). After
the backward pass the gradient of :math:`\hat E` becomes a sparse (COO)
gradient of :math:`E` with rows :math:`\mathcal U`, which torch's
sparse-aware optimisers apply to those rows only: Adagrad updates its
per-row accumulator and the rows (exactly the dense update, which leaves
rows with zero gradient unchanged); Adam becomes
:class:`torch.optim.SparseAdam` (lazy Adam: moments of untouched rows are
not decayed, so it differs from dense Adam). Relation tables are small
(``2R`` rows) and stay whole; their gradients are made sparse too (all
rows: the dense update, also for SparseAdam), so one optimiser serves all
tables.

The student's mask rows are built from its prefix lengths when the masks are
nested (:meth:`~metasd_pyg.pruning.nested.NestedMasks.row_masks`, a
comparison per gathered row, never a full-table product) and gathered from
the stored masks otherwise. The meta step gathers its own rows (batch slice,
quiz batch and their candidates) through the same engine
(:meth:`Engine.view`).

Nothing in a row-wise step allocates memory proportional to the number of
entities: the cost of a step is the cost of its score products.

The engine follows from the loss (``engine="auto"``: rows for ``sampled``,
dense for ``1-n``); ``engine="dense"`` forces whole tables (the reference the
row-wise engine is tested against: same parameters after a few steps, to
float tolerance).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

from metasd_pyg.errors import ConfigError
from metasd_pyg.models.adapters import ENTITY_TABLES
from metasd_pyg.training.views import student_weights

if TYPE_CHECKING:
    from metasd_pyg.training.config import MetaSDConfig
    from metasd_pyg.training.trainer import Trainer

#: Engine names of :class:`~metasd_pyg.training.trainer_config.TrainerConfig`.
EngineName = Literal["auto", "dense", "rows"]

#: Optimisers that accept sparse gradients (the row-wise engine's).
SPARSE_OPTIMIZERS: tuple[type[torch.optim.Optimizer], ...] = (
    torch.optim.Adagrad, torch.optim.SparseAdam, torch.optim.SGD)


@dataclass
class TableView:
    """The tables and ids one computation of a step works on.

    Attributes:
        batch: ``[B, 3]`` rows whose entity ids index the view's tables.
        candidates: ``[C]`` shared candidate ids in the view (``None``: 1-N).
        target: ``[B]`` column of each row's answer in the logits.
        weights: Parameter name -> tensor overriding the model's parameter
            (``None``: the model's own parameters, the dense engine).
        masks: Parameter name -> bool mask aligned with the view's tables
            (``None``: no student).
        units: Columns the student's entity scores use
            (:func:`~metasd_pyg.training.views.active_units`).
        rows: ``[U]`` sorted global entity ids of the gathered rows
            (``None``: whole tables).
    """

    batch: Tensor
    candidates: Tensor | None
    target: Tensor
    weights: dict[str, Tensor] | None
    masks: dict[str, Tensor] | None
    units: Tensor | None
    rows: Tensor | None = None
    _params: dict[str, Tensor] = field(default_factory=dict, repr=False)

    def tables(self) -> dict[str, Tensor]:
        """Every table of the view by name (the gathered rows, else the parameters)."""
        return {**self._params, **(self.weights or {})}

    def student(self) -> dict[str, Tensor]:
        """The student's masked tables of this view (graph to :meth:`tables` kept)."""
        assert self.masks is not None, "the view has no masks"
        return student_weights(self.tables(), self.masks)

    def local(self, ids: Tensor) -> Tensor:
        """Global entity ids -> their row in the view (identity for whole tables).

        Args:
            ids: Entity ids (any shape); every one must be among :attr:`rows`.
        """
        if self.rows is None:
            return ids
        return torch.searchsorted(self.rows, ids.contiguous())

    def local_batch(self, batch: Tensor) -> Tensor:
        """``[B, 3]`` rows with their head and tail ids mapped by :meth:`local`."""
        if self.rows is None:
            return batch
        return torch.stack([self.local(batch[:, 0]), batch[:, 1], self.local(batch[:, 2])], 1)

    def parameter_grads(self, grads: Mapping[str, Tensor], params: Mapping[str, Tensor]
                        ) -> dict[str, Tensor]:
        """Gradients w.r.t. the view's tables -> gradients of the model's parameters.

        Whole tables pass through; gathered rows become sparse COO gradients
        of the full table (rows :attr:`rows`), relation tables sparse
        gradients of all their rows.

        Args:
            grads: Name -> gradient of the view's table of that name.
            params: The model's parameters by name.
        """
        if self.rows is None:
            return dict(grads)
        return {n: _sparse_rows(self.rows if self.weights and n in self.weights else None,
                                g, params[n].shape) for n, g in grads.items()}


def _sparse_rows(rows: Tensor | None, grad: Tensor, shape: torch.Size) -> Tensor:
    """``grad`` of rows ``rows`` (all rows if ``None``) as a coalesced sparse COO tensor."""
    if grad.is_sparse:
        return grad
    if rows is None:  # a whole (relation) table: every row, as the dense update
        rows = torch.arange(grad.size(0), device=grad.device)
    return torch.sparse_coo_tensor(rows.unsqueeze(0), grad, shape, is_coalesced=True,
                                   check_invariants=False)


class Engine:
    """Base of the engines: how a step gathers its tables and hands back gradients."""

    #: Engine name (as in ``TrainerConfig.engine``).
    name: str = "engine"
    #: Whether the engine's gradients are sparse (the optimisers must accept them).
    sparse: bool = False

    def check_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Refuse an optimiser that cannot apply the engine's gradients.

        Args:
            optimizer: The main or a part's optimiser.
        """
        if self.sparse and not isinstance(optimizer, SPARSE_OPTIMIZERS):
            raise ConfigError(
                f"the row-wise engine (loss=sampled) gives sparse gradients, which "
                f"{type(optimizer).__name__} does not take; build the optimiser with "
                "OptimConfig.build(params, sparse=True) (Adagrad, or SparseAdam for adam), "
                "or set engine='dense'")

    def view(self, trainer: Trainer, batches: Sequence[Tensor],
             candidates: Sequence[Tensor | None], targets: Sequence[Tensor | None],
             cover: Tensor | None = None) -> list[TableView]:
        """One view per batch, all over the same tables (one gather for all of them).

        Args:
            trainer: The trainer (model, masks).
            batches: ``[B_i, 3]`` rows with global ids.
            candidates: Shared candidates of each batch (or ``None``).
            targets: ``[B_i]`` answer columns of each batch in its logits
                (``None``: the tail column, for 1-N).
            cover: More entity ids whose rows the view must hold (a data-parallel
                rank gathers the rows of the whole global batch, so that every
                rank's gradient has the same rows and the ranks sum them with one
                dense all-reduce).
        """
        raise NotImplementedError

    def scatter(self, trainer: Trainer, view: TableView) -> None:
        """After the backward pass: move the view's gradients onto the model's parameters."""

    def stepping(self) -> AbstractContextManager[Any]:
        """Context of the optimiser steps (sparse engines: invariant checks explicitly off;
        the engine builds its sparse gradients coalesced and in range)."""
        if self.sparse:
            return torch.sparse.check_sparse_tensor_invariants(enable=False)
        return nullcontext()


class DenseEngine(Engine):
    """Whole tables: the objective computes on the model's parameters."""

    name = "dense"

    def view(self, trainer: Trainer, batches: Sequence[Tensor],
             candidates: Sequence[Tensor | None], targets: Sequence[Tensor | None],
             cover: Tensor | None = None) -> list[TableView]:
        params = dict(trainer.model.named_parameters())
        return [TableView(b, c, b[:, 2] if t is None else t, None, trainer.masks, trainer.units,
                          _params=params)
                for b, c, t in zip(batches, candidates, targets)]


class RowEngine(Engine):
    """Gathered rows: the objective computes on the rows the step touches (module docstring)."""

    name = "rows"
    sparse = True

    def view(self, trainer: Trainer, batches: Sequence[Tensor],
             candidates: Sequence[Tensor | None], targets: Sequence[Tensor | None],
             cover: Tensor | None = None) -> list[TableView]:
        ids = [t for b in batches for t in (b[:, 0], b[:, 2])]
        if cover is not None:
            ids.append(cover.reshape(-1))
        for c in candidates:
            if c is None:
                raise ConfigError("the row-wise engine needs sampled candidates (loss=sampled); "
                                  "with loss=1-n set engine='dense'")
            ids.append(c)
        rows = torch.unique(torch.cat(ids))
        params = dict(trainer.model.named_parameters())
        leaves = {n: params[n].detach().index_select(0, rows).requires_grad_(True)
                  for n in ENTITY_TABLES if n in params}
        masks = trainer.row_masks(rows)
        views = []
        for b, c, t in zip(batches, candidates, targets):
            assert c is not None and t is not None
            v = TableView(b, c, t, leaves, masks, trainer.units, rows, _params=params)
            v.batch, v.candidates = v.local_batch(b), v.local(c)
            views.append(v)
        return views

    def scatter(self, trainer: Trainer, view: TableView) -> None:
        assert view.rows is not None and view.weights is not None
        for n, p in trainer.model.named_parameters():
            leaf = view.weights.get(n)
            if leaf is not None:
                g = leaf.grad
                p.grad = None if g is None else _sparse_rows(view.rows, g, p.shape)
            elif p.grad is not None and not p.grad.is_sparse:
                p.grad = _sparse_rows(None, p.grad, p.shape)


#: Engines by name.
ENGINES: dict[str, type[Engine]] = {"dense": DenseEngine, "rows": RowEngine}


def engine_for(config: MetaSDConfig) -> Engine:
    """The engine a configuration runs with (``auto``: rows for ``loss=sampled``).

    Args:
        config: The run's configuration (its ``trainer.engine`` and ``loss.loss``).

    Raises:
        ConfigError: ``engine="rows"`` with the 1-N loss.
    """
    name = config.trainer.engine
    sampled = config.loss.loss == "sampled"
    if name == "auto":
        name = "rows" if sampled else "dense"
    if name == "rows" and not sampled:
        raise ConfigError("engine=rows needs loss=sampled (the 1-N loss scores every entity, "
                          "so every step touches whole tables); use engine=dense or auto")
    return ENGINES[name]()
