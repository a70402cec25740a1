"""Validation during training and model selection on valid MRR (best-epoch snapshots)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
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

#: Snapshots of at least this many bytes go to the checkpoint folder (when the
#: trainer has one) instead of memory: at ogbl-wikikg2 size a snapshot is 2.5 GB.
DISK_SNAPSHOT_BYTES = 256 * 2**20
#: File name prefix of on-disk best-epoch snapshots in a checkpoint folder.
SNAPSHOT_PREFIX = "best-"


class DiskSnapshot(Mapping[str, Tensor]):
    """A best-epoch snapshot in a safetensors file, read tensor by tensor on access.

    Args:
        path: The snapshot file (``model/<name>`` and ``mask/<name>`` tensors).
    """

    def __init__(self, path: str | Path) -> None:
        from safetensors import SafetensorError, safe_open

        from metasd_pyg.errors import RunFolderError

        self.path = Path(path)
        try:
            with safe_open(str(self.path), framework="pt") as f:
                self._keys = list(f.keys())
        except (SafetensorError, OSError) as exc:
            raise RunFolderError(f"{self.path}: not a readable best-epoch snapshot ({exc})"
                                 ) from exc

    def __getitem__(self, key: str) -> Tensor:
        from safetensors import safe_open

        if key not in self._keys:
            raise KeyError(key)
        with safe_open(str(self.path), framework="pt") as f:
            return f.get_tensor(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


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
        self.best_state: Mapping[str, Tensor] | None = None
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
            self.best_state = snapshot(trainer, self.best_epoch)
            self.bad_evals = 0
            return True
        self.bad_evals += 1
        return False


def snapshot(trainer: Trainer, epoch: int = 0) -> Mapping[str, Tensor]:
    """Copies of ``trainer``'s parameters (``model/<name>``) and masks (``mask/<name>``).

    In memory, or, when the trainer has a checkpoint folder and the snapshot
    has at least :data:`DISK_SNAPSHOT_BYTES`, written (streamed, atomically,
    straight from the live tensors) to ``best-<phase>-<epoch>.safetensors``
    there and returned as a :class:`DiskSnapshot`; the checkpoint then names
    that file instead of embedding the tensors.

    Args:
        trainer: The trainer.
        epoch: The epoch the snapshot is of (names the file).
    """
    live = {f"model/{n}": p.detach() for n, p in trainer.model.named_parameters()}
    if trainer.masks is not None:
        live.update({f"mask/{n}": m for n, m in trainer.masks.items()})
    size = sum(t.numel() * t.element_size() for t in live.values())
    folder = trainer.checkpoint_dir
    if folder is not None and size >= DISK_SNAPSHOT_BYTES:
        from metasd_pyg.storage.atomic import atomic_save_safetensors

        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{SNAPSHOT_PREFIX}{trainer.phase}-{epoch:05d}.safetensors"
        atomic_save_safetensors(path, _distinct(live))
        return DiskSnapshot(path)
    return {k: v.clone() for k, v in live.items()}


def _distinct(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """CPU contiguous tensors, copies where two share memory (safetensors refuses those)."""
    out: dict[str, Tensor] = {}
    seen: set[int] = set()
    for k, t in tensors.items():
        t = t.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        out[k] = t.clone() if ptr in seen else t
        seen.add(ptr)
    return out


def restore(trainer: Trainer, state: Mapping[str, Tensor]) -> None:
    """Put a :func:`snapshot` back into ``trainer`` (masks kept if it has none).

    Args:
        trainer: The trainer.
        state: A snapshot.
    """
    with torch.no_grad():
        for n, p in trainer.model.named_parameters():
            p.copy_(state[f"model/{n}"].to(p.device))
    masks = {k[5:]: state[k].to(trainer.device) for k in state if k.startswith("mask/")}
    trainer.masks = masks or trainer.masks
