"""The trainer's own section: the step loop (how long, how big, when to stop, checkpoints)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from metasd_pyg.sections import Section, check, option


@dataclass(frozen=True)
class TrainerConfig(Section):
    """The step loop: how long, how big, when to stop, how to checkpoint.

    Args:
        epochs: Training epochs (of the teacher phase for mode=oneshot).
        batch_size: Rows of the reciprocal training stream per step.
        patience: Early stopping after this many validations without a better
            valid MRR (the student's, else the model's; None = never stop early).
        checkpoint_every: Write a checkpoint every this many epochs (with a checkpoint dir).
        seed: Seed of the model initialisation, shuffling, sampling and masks.
        compact_student: Score the student on the columns some entity row keeps
            only (metasd_pyg.training.views.compact_view): the same logits,
            cheaper matrix products when the masks leave whole columns empty
            (aligned, or nested with k_max). ComplEx and DistMult only; False
            scores on the full masked tables.
        engine: auto (row-wise for loss=sampled, dense for 1-n), dense (whole
            tables every step) or rows (only the rows a step touches: sparse
            gradients and optimiser updates; needs loss=sampled). See
            metasd_pyg.training.engine.
        max_steps: Stop after this many optimisation steps in all (smoke runs,
            benchmarks; None = run all epochs). A run it stops skips the final
            evaluation unless final_eval.
        final_eval: Evaluate valid and test at the end also when max_steps
            stopped the run.
    """

    #: Runs saved before the row-wise engine existed chose the engine by loss too.
    ADDED_LATER: ClassVar[Mapping[str, Any]] = {"engine": "auto", "max_steps": None,
                                                "final_eval": False}

    epochs: int = option(100, resumable=True)
    batch_size: int = 1000
    patience: int | None = option(None, resumable=True)
    checkpoint_every: int = 1
    seed: int = 0
    compact_student: bool = True
    engine: Literal["auto", "dense", "rows"] = "auto"
    max_steps: int | None = option(None, resumable=True)
    final_eval: bool = option(False, resumable=True)

    def validate(self) -> None:
        check(self.epochs >= 0, f"epochs={self.epochs}: must be >= 0")
        check(self.batch_size >= 1, f"batch_size={self.batch_size}: must be >= 1")
        check(self.patience is None or self.patience >= 1,
              f"patience={self.patience}: must be >= 1 or None")
        check(self.max_steps is None or self.max_steps >= 1,
              f"max_steps={self.max_steps}: must be >= 1 or None")
        check(self.checkpoint_every >= 1,
              f"checkpoint_every={self.checkpoint_every}: must be >= 1")
