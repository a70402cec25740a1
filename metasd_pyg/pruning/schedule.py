r"""When to recompute the masks and at which sparsity (gradual pruning).

The ramp follows Zhu & Gupta (2017), "To prune, or not to prune"
(https://arxiv.org/abs/1710.01878): with initial sparsity :math:`s_i`, target
:math:`s_f`, ramp length :math:`n` epochs and progress
:math:`p = \min(1, t / n)` (:math:`t` in epochs, fractional when
``steps_per_epoch`` is known),

.. math::
    s(t) = s_f + (s_i - s_f)(1 - p)^3 \quad\text{(cubic)}, \qquad
    s(t) = s_i + (s_f - s_i)\,p \quad\text{(linear)}.

With ``ramp_epochs=0`` the target applies from the start. Masks are
recomputed from the current weights at the start of every ``every_epochs``-th
epoch (default: every epoch), or every ``every_steps`` optimiser steps.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

from metasd_pyg.errors import ConfigError
from metasd_pyg.pruning.config import RAMPS, ScheduleConfig


@dataclass(frozen=True)
class PruningSchedule:
    """Sparsity ramp and recomputation times of dynamic pruning.

    ``epoch`` is 0-based; ``step`` is the 0-based index of the batch within
    the epoch. With ``steps_per_epoch`` given, step counting for
    ``every_steps`` is global (``epoch * steps_per_epoch + step``) and the
    ramp advances within epochs; without it, step counting restarts every
    epoch and the ramp advances once per epoch.

    Args:
        target_sparsity: Final share of pruned weights, in ``[0, 1]``.
        every_epochs: Recompute at the start of every N-th epoch.
        every_steps: Recompute every N steps instead (overrides every_epochs).
        ramp_epochs: Length of the ramp from ``initial_sparsity`` to the target.
        ramp: ``"cubic"`` (Zhu & Gupta 2017) or ``"linear"``.
        initial_sparsity: Sparsity at the start of the ramp.
        steps_per_epoch: Batches per epoch, if known.
    """

    target_sparsity: float
    _: KW_ONLY
    every_epochs: int = 1
    every_steps: int | None = None
    ramp_epochs: int = 0
    ramp: str = "cubic"
    initial_sparsity: float = 0.0
    steps_per_epoch: int | None = None

    def __post_init__(self) -> None:
        for name, value in (
            ("target_sparsity", self.target_sparsity),
            ("initial_sparsity", self.initial_sparsity),
        ):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value}")
        if self.every_epochs < 1:
            raise ConfigError(f"every_epochs must be >= 1, got {self.every_epochs}")
        if self.every_steps is not None and self.every_steps < 1:
            raise ConfigError(f"every_steps must be >= 1, got {self.every_steps}")
        if self.ramp_epochs < 0:
            raise ConfigError(f"ramp_epochs must be >= 0, got {self.ramp_epochs}")
        if self.ramp not in RAMPS:
            raise ConfigError(f"unknown ramp {self.ramp!r}; known: {', '.join(RAMPS)}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ConfigError(f"steps_per_epoch must be >= 1, got {self.steps_per_epoch}")

    @classmethod
    def from_config(cls, config: ScheduleConfig, target_sparsity: float, *,
                    steps_per_epoch: int | None = None) -> PruningSchedule:
        """The schedule of a :class:`~metasd_pyg.pruning.config.ScheduleConfig` section.

        Args:
            config: The section.
            target_sparsity: The pruner's target sparsity.
            steps_per_epoch: Batches per epoch of the run.
        """
        return cls(target_sparsity, every_epochs=config.every_epochs,
                   every_steps=config.every_steps, ramp_epochs=config.ramp_epochs,
                   ramp=config.ramp, steps_per_epoch=steps_per_epoch)

    @property
    def config(self) -> ScheduleConfig:
        """The section this schedule runs with."""
        return ScheduleConfig(every_epochs=self.every_epochs, every_steps=self.every_steps,
                              ramp_epochs=self.ramp_epochs, ramp=self.ramp)  # type: ignore[arg-type]

    def progress(self, epoch: int, step: int = 0) -> float:
        """Ramp progress :math:`p \\in [0, 1]` at ``(epoch, step)``.

        Args:
            epoch: 0-based epoch.
            step: 0-based batch index within the epoch.
        """
        if self.ramp_epochs == 0:
            return 1.0
        t = float(epoch)
        if self.steps_per_epoch is not None:
            t += step / self.steps_per_epoch
        return min(1.0, max(0.0, t / self.ramp_epochs))

    def sparsity_at(self, epoch: int, step: int = 0) -> float:
        """Sparsity to use for masks computed at ``(epoch, step)``.

        Args:
            epoch: 0-based epoch.
            step: 0-based batch index within the epoch.
        """
        p = self.progress(epoch, step)
        s_i, s_f = self.initial_sparsity, self.target_sparsity
        if self.ramp == "linear":
            return s_i + (s_f - s_i) * p
        return s_f + (s_i - s_f) * (1.0 - p) ** 3

    def due(self, epoch: int, step: int = 0) -> bool:
        """Whether the masks are recomputed before the batch ``(epoch, step)``.

        Args:
            epoch: 0-based epoch.
            step: 0-based batch index within the epoch.
        """
        if self.every_steps is not None:
            g = step if self.steps_per_epoch is None else epoch * self.steps_per_epoch + step
            return g % self.every_steps == 0
        return step == 0 and epoch % self.every_epochs == 0
