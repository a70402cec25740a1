"""Training modes: which models a run trains, and the roles its results are reported under.

A mode names a composition of trainer parts
(:mod:`metasd_pyg.training.recipes` builds it):

* ``"metasd"``: teacher and pruned student of the same tables, mutual
  distillation, dynamic pruning and (``meta=True``) the meta step;
* ``"teacher"``: the dense teacher alone;
* ``"dense_same_nnz"``: a dense model with as many weights as the student
  has non-zeros;
* ``"oneshot"``: train the teacher, prune it once, fine-tune the masked model
  with the masks fixed.

:data:`ROLES` is the one place that maps a mode to the models its results
hold; the run pipeline, the ``evaluate`` command and the report all read it.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

from metasd_pyg.sections import Section, check, option

#: Training modes.
Mode = Literal["metasd", "teacher", "dense_same_nnz", "oneshot"]
#: Accepted modes.
MODES: tuple[str, ...] = typing.get_args(Mode)


@dataclass(frozen=True)
class Role:
    """One model of a run's results.

    Attributes:
        name: Its name in results, tables and the report (``"student"``, ...).
        result: Where :class:`~metasd_pyg.training.trainer.TrainResult` holds it:
            ``"teacher"`` (``teacher_valid`` / ``teacher_test``), ``"student"``
            (``student_valid`` / ``student_test``) or a key prefix of ``extra``
            (``"oneshot"``: ``extra["oneshot_valid"]`` / ``extra["oneshot_test"]``).
        masked: Whether the model is the masked (pruned) one.
    """

    name: str
    result: str
    masked: bool


#: Mode -> the roles of its results, in the order results are written.
ROLES: dict[str, tuple[Role, ...]] = {
    "metasd": (Role("teacher", "teacher", False), Role("student", "student", True)),
    "teacher": (Role("teacher", "teacher", False),),
    "dense_same_nnz": (Role("dense_same_nnz", "teacher", False),),
    "oneshot": (Role("oneshot", "student", True),
                Role("oneshot_no_finetune", "oneshot", True)),
}


def roles_of(mode: str) -> tuple[Role, ...]:
    """The roles of a mode's results (in the order results are written).

    Args:
        mode: One of :data:`MODES`.
    """
    from metasd_pyg.errors import ConfigError

    if mode not in ROLES:
        raise ConfigError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    return ROLES[mode]


def main_role(mode: str) -> Role:
    """The role a run is selected and summarised by (the masked model if there is one).

    Args:
        mode: One of :data:`MODES`.
    """
    roles = roles_of(mode)
    return next((r for r in roles if r.masked), roles[0])


def has_student(mode: str) -> bool:
    """Whether a mode trains a pruned model (``metasd``, ``oneshot``).

    Args:
        mode: One of :data:`MODES`.
    """
    return any(r.masked for r in roles_of(mode))


def runs_meta(mode: str) -> bool:
    """Whether a mode runs the meta step when ``meta=True`` (only ``metasd``).

    Args:
        mode: A mode name (unknown names: ``False``).
    """
    return mode == "metasd"


@dataclass(frozen=True)
class RecipeConfig(Section):
    """Which composition of parts a run trains.

    Args:
        mode: metasd (teacher + student), teacher (dense teacher alone),
            dense_same_nnz (dense model with as many weights as the student has
            non-zeros) or oneshot (train the teacher, prune once, fine-tune the
            masked model).
        finetune_epochs: mode=oneshot: fine-tuning epochs with the mask fixed.
    """

    mode: Mode = "metasd"
    finetune_epochs: int = option(0, resumable=True)

    def validate(self) -> None:
        check(self.finetune_epochs >= 0,
              f"finetune_epochs={self.finetune_epochs}: must be >= 0")
