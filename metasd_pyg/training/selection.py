"""Validation during training and model selection on valid MRR (best-epoch snapshots)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from metasd_pyg.evaluation.config import EvalConfig
from metasd_pyg.training.views import compact_view, student_weights

if TYPE_CHECKING:
    from metasd_pyg.training.trainer import Trainer

#: ``evaluate(model, graph, split, *, weights=..., max_queries=..., ...)`` -> result
#: with ``.summary`` (see :func:`metasd_pyg.evaluation.evaluate`).
Evaluator = Callable[..., Any]


class Selection:
    """Validate a trainer's models and keep the best epoch (by valid MRR).

    The selection metric is the student's valid MRR when the trainer's
    objective scores a student, else the model's own. The best epoch's
    parameters and masks are snapshotted and restored at the end of training.

    Args:
        config: The evaluation section.
        evaluator: Evaluation function (default :func:`metasd_pyg.evaluation.evaluate`).
    """

    def __init__(self, config: EvalConfig, evaluator: Evaluator | None = None) -> None:
        self.config = config
        self.evaluator = evaluator
        self.best_metric = -math.inf
        self.best_epoch = 0
        self.best_state: dict[str, Tensor] | None = None
        self.bad_evals = 0

    def evaluate(self, trainer: Trainer, split: str, student: bool,
                 max_queries: int | None = None) -> Any:
        """Evaluate the teacher (or the masked student) of ``trainer`` on ``split``.

        Args:
            trainer: The trainer.
            split: ``"valid"`` or ``"test"``.
            student: Score the masked student (needs masks).
            max_queries: A fixed seeded subset of queries (``None`` = all).
        """
        if self.evaluator is None:
            from metasd_pyg.evaluation import evaluate as evaluator
        else:
            evaluator = self.evaluator
        weights = None
        masks = trainer.masks
        if student and masks is not None:
            # narrow to the student's columns first, then mask: the same tables as
            # compact_view(student_weights()), without a full-size masked copy
            params = {n: p.detach() for n, p in trainer.model.named_parameters()}
            weights = student_weights(compact_view(params, masks, trainer.units),
                                      compact_view(masks, masks, trainer.units))
        with torch.no_grad():
            return evaluator(trainer.model, trainer.graph, split, weights=weights,
                             reciprocal=True, batch_size=self.config.batch_size,
                             max_queries=max_queries,
                             progress=trainer.config.runtime.progress and max_queries is None)

    def validate(self, trainer: Trainer, logs: dict[str, Any]) -> float:
        """Validate, record the metrics in ``logs``, return the selection metric.

        Args:
            trainer: The trainer.
            logs: The epoch's history record.
        """
        cap = self.config.max_queries
        teacher = self.evaluate(trainer, "valid", False, cap)
        logs["teacher_valid_mrr"] = float(teacher.summary["mrr"])
        summary = (self.evaluate(trainer, "valid", True, cap).summary
                   if trainer.objective.uses_student else teacher.summary)
        for key in ("mrr", "hits@1", "hits@3", "hits@10"):
            logs[f"valid_{key}"] = float(summary[key])
        return float(summary["mrr"])

    def consider(self, trainer: Trainer, metric: float) -> bool:
        """Record a selection metric of ``trainer``'s current epoch; snapshot a new best.

        Args:
            trainer: The trainer.
            metric: The selection metric.

        Returns:
            Whether it is a new best.
        """
        if metric > self.best_metric:
            self.best_metric, self.best_epoch = metric, trainer.epoch
            self.best_state = snapshot(trainer)
            self.bad_evals = 0
            return True
        self.bad_evals += 1
        return False


def snapshot(trainer: Trainer) -> dict[str, Tensor]:
    """Copies of ``trainer``'s parameters (``model/<name>``) and masks (``mask/<name>``).

    Args:
        trainer: The trainer.
    """
    state = {f"model/{n}": p.detach().clone() for n, p in trainer.model.named_parameters()}
    if trainer.masks is not None:
        state.update({f"mask/{n}": m.clone() for n, m in trainer.masks.items()})
    return state


def restore(trainer: Trainer, state: dict[str, Tensor]) -> None:
    """Put a :func:`snapshot` back into ``trainer`` (masks kept if it has none).

    Args:
        trainer: The trainer.
        state: A snapshot.
    """
    with torch.no_grad():
        for n, p in trainer.model.named_parameters():
            p.copy_(state[f"model/{n}"].to(p.device))
    masks = {k[5:]: v.to(trainer.device) for k, v in state.items() if k.startswith("mask/")}
    trainer.masks = masks or trainer.masks
