"""The outcome of a training run (:class:`TrainResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metasd_pyg.training.config import MetaSDConfig
    from metasd_pyg.training.trainer import Trainer


@dataclass
class TrainResult:
    """Outcome of :meth:`~metasd_pyg.training.trainer.Trainer.fit`.

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
        config: The configuration that ran (every part's own section).
        extra: Mode-specific results (``oneshot``: the pruned teacher before
            fine-tuning, ``"oneshot_valid"`` / ``"oneshot_test"``; the teacher
            results are those of the trained teacher before pruning).
        wall_time: Seconds spent in :meth:`~metasd_pyg.training.trainer.Trainer.fit`.
        stopped_early: Whether early stopping ended the run.
        steps: Optimisation steps taken in all.
        step_seconds_median: Median seconds of this process's steps (``None``: none taken).
        evaluated: Whether the final evaluations ran (``False``: ``max_steps``
            ended the run without ``final_eval``; the evaluations are ``None``).
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
    steps: int = 0
    step_seconds_median: float | None = None
    evaluated: bool = True

    @property
    def final_valid(self) -> Any:
        """The selected model's valid result (student if there is one)."""
        return self.student_valid if self.student_valid is not None else self.teacher_valid

    @property
    def final_test(self) -> Any:
        """The selected model's test result (student if there is one)."""
        return self.student_test if self.student_test is not None else self.teacher_test

    @classmethod
    def collect(cls, trainer: Trainer, *, wall_time: float, stopped_early: bool,
                evaluate: bool = True) -> TrainResult:
        """The result of a finished ``trainer`` (best epoch restored): final valid/test
        evaluations of the teacher (unless a phase before recorded them in ``extra``)
        and of the student (if the objective scores one).

        Args:
            trainer: The trainer.
            wall_time: Seconds of training.
            stopped_early: Whether early stopping ended the run.
            evaluate: Run the final evaluations (else they are ``None``).
        """
        import statistics

        sel = trainer.selection
        times = trainer.step_times
        common = dict(history=trainer.history, best_epoch=sel.best_epoch,
                      best_valid_mrr=sel.best_metric, config=trainer.config,
                      wall_time=wall_time, stopped_early=stopped_early,
                      steps=trainer.global_step,
                      step_seconds_median=statistics.median(times) if times else None)
        if not evaluate:
            return cls(teacher_valid=None, teacher_test=None, student_valid=None,
                       student_test=None, evaluated=False, **common)  # type: ignore[arg-type]
        extra = dict(trainer.extra)
        teacher_valid = as_result(extra.pop("teacher_valid", None))
        teacher_test = as_result(extra.pop("teacher_test", None))
        student = trainer.objective.uses_student
        return cls(
            teacher_valid=teacher_valid or sel.evaluate(trainer, "valid", False),
            teacher_test=teacher_test or sel.evaluate(trainer, "test", False),
            student_valid=sel.evaluate(trainer, "valid", True) if student else None,
            student_test=sel.evaluate(trainer, "test", True) if student else None,
            extra={k: as_result(v) for k, v in extra.items()},
            **common,  # type: ignore[arg-type]
        )

    def of(self, result: str, split: str) -> Any:
        """The evaluation of a :class:`~metasd_pyg.training.modes.Role`'s ``result`` on ``split``.

        Args:
            result: ``"teacher"``, ``"student"`` or an ``extra`` prefix (``"oneshot"``).
            split: ``"valid"`` or ``"test"``.
        """
        if result in ("teacher", "student"):
            return getattr(self, f"{result}_{split}")
        return self.extra.get(f"{result}_{split}")

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
            "steps": self.steps,
            "step_seconds_median": self.step_seconds_median,
            "evaluated": self.evaluated,
        }


def as_result(value: Any) -> Any:
    """An evaluation result, rebuilt from its dict form (after a resume) when possible.

    Args:
        value: An evaluation result, its ``to_dict()`` form, or anything else.
    """
    if isinstance(value, dict) and "summary" in value and "buckets" in value:
        from metasd_pyg.evaluation import EvaluationResult

        return EvaluationResult.from_dict(value)
    return value
