"""Trainer callback that writes a run folder's logs while training runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from metasd_pyg.storage.folder import RunFolder
from metasd_pyg.training.callbacks import Callback

if TYPE_CHECKING:
    from metasd_pyg.training.trainer import Trainer


class RunLogger(Callback):
    """Append per-epoch records to ``train.jsonl`` and validations to ``metrics.jsonl``.

    Records of epochs after the one training (re)starts from are dropped first,
    so a resumed run's logs hold every epoch exactly once. The logs let a user
    follow a long run (``tail -f``); the final, authoritative history is
    rewritten from the trainer's checkpointed history at the end of the run.

    Args:
        run: The run folder to write to.
    """

    name = "run_logger"

    def __init__(self, run: RunFolder) -> None:
        self.run = run
        self._started = False

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Drop log records after ``epoch`` (finished epochs) once, at the first epoch."""
        if not self._started:
            self.run.truncate_logs(after_epoch=epoch)
            self._started = True

    def on_evaluate(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        """Append one validation record."""
        self.run.append_metrics({"epoch": epoch, "step": trainer.global_step, "split": "valid",
                                 "final": False, **metrics})

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        """Append the epoch's training record."""
        self.run.append_train_log(dict(logs))
