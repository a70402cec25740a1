r"""The configuration tree of a training run: one typed section per part.

Paper: Li, Liu, Yang, Li, "Self-Distillation with Meta Learning for Knowledge
Graph Completion", Findings of EMNLP 2022,
https://aclanthology.org/2022.findings-emnlp.149/.

:class:`MetaSDConfig` holds the sections; each is defined, with its value
sets, defaults, help texts and validation, beside the part that uses it:

* ``model``: :class:`~metasd_pyg.models.config.ModelConfig`, the PyG model;
* ``recipe``: :class:`~metasd_pyg.training.modes.RecipeConfig`, the mode's
  composition of parts (:mod:`metasd_pyg.training.recipes`);
* ``trainer``: :class:`~metasd_pyg.training.trainer_config.TrainerConfig`, the step loop;
* ``optim``: :class:`~metasd_pyg.training.optim.OptimConfig`, the main optimiser;
* ``loss`` and ``distill``: :class:`~metasd_pyg.training.objective.LossConfig` and
  :class:`~metasd_pyg.training.objective.DistillConfig`, the objective;
* ``pruning`` and ``schedule``: :class:`~metasd_pyg.pruning.config.PruningConfig`
  (the :class:`~metasd_pyg.pruning.Pruner`) and
  :class:`~metasd_pyg.pruning.config.ScheduleConfig` (the
  :class:`~metasd_pyg.pruning.PruningSchedule`);
* ``meta``: :class:`~metasd_pyg.training.meta.MetaConfig`, the
  :class:`~metasd_pyg.training.meta.MetaStep`;
* ``eval``: :class:`~metasd_pyg.evaluation.config.EvalConfig`, validation during training;
* ``runtime``: :class:`~metasd_pyg.training.runtime.RuntimeConfig`, device, threads, progress;
* ``distributed``: :class:`~metasd_pyg.training.distributed.DistributedConfig`, data-parallel
  training under ``torchrun`` (:mod:`metasd_pyg.training.distributed`).

In flat form (flags, configuration files, a run's ``config.json``) every
option has one key (``--meta-every`` is ``MetaConfig.every``); the keys are
those of earlier releases, so old commands, files and run folders keep
working. Defaults are the official MetaSD code's where it has one (Adagrad,
lr 0.1, batch 1000, DURA, temperature 3 with the 3:1 two-way KL, virtual-step
lr 0.1, meta lr 1e-4, 2% quiz slice) except three chosen on this repository's
CPU protocol (``docs/training.md``): DURA weight 0.01, ``student_weight=3``
and ``student_regularizer_weight=0``.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from metasd_pyg.errors import ConfigError
from metasd_pyg.evaluation.config import EvalConfig
from metasd_pyg.models.config import ModelConfig
from metasd_pyg.pruning.config import PruningConfig, ScheduleConfig
from metasd_pyg.sections import OptionInfo, Section
from metasd_pyg.training.distributed import DistributedConfig
from metasd_pyg.training.meta import MetaConfig
from metasd_pyg.training.modes import MODES, RecipeConfig, has_student, runs_meta
from metasd_pyg.training.objective import DistillConfig, LossConfig
from metasd_pyg.training.optim import OptimConfig
from metasd_pyg.training.runtime import RuntimeConfig
from metasd_pyg.training.trainer_config import TrainerConfig

__all__ = ["MODES", "PAPER_FB15K237", "MetaSDConfig", "resumable_keys", "saved_config_values"]


@dataclass(frozen=True)
class MetaSDConfig:
    """All options of a training run, one section per part (module docstring).

    Build it from sections (``MetaSDConfig(pruning=PruningConfig(strategy="aligned"))``)
    or from flat keys (:meth:`flat`, :meth:`from_dict`); :meth:`to_dict` gives the
    flat form back.

    Args:
        model: The model.
        recipe: The mode and its phases.
        trainer: The step loop (epochs, batch size, seed, ...).
        optim: The main optimiser.
        loss: Cross-entropy, regulariser, relation prediction.
        distill: Mutual distillation.
        pruning: The student's masks.
        schedule: When masks are recomputed.
        meta: The meta step.
        eval: Validation during training.
        runtime: Device, threads, progress.
        distributed: Data-parallel training (backend, timeout, debug check).
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    pruning: PruningConfig = field(default_factory=PruningConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    # ------------------------------------------------------------ sections
    @classmethod
    def section_types(cls) -> dict[str, type[Section]]:
        """Field name -> section class, in order."""
        return {f.name: f.default_factory for f in dataclasses.fields(cls)}  # type: ignore[misc]

    def sections(self) -> tuple[Section, ...]:
        """The section instances, in order."""
        return tuple(getattr(self, name) for name in self.section_types())

    @classmethod
    def options(cls) -> tuple[OptionInfo, ...]:
        """Every option of every section (flat key, field, type, default, ...)."""
        return tuple(o for sec in cls.section_types().values() for o in sec.options())

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The flat keys of every option."""
        return tuple(o.key for o in cls.options())

    def with_sections(self, *sections: Section) -> MetaSDConfig:
        """A copy with the given sections replaced (matched by their class).

        Args:
            *sections: Section instances (e.g. a part's reported ``config``).
        """
        by_type = {t: name for name, t in self.section_types().items()}
        changes: dict[str, Section] = {}
        for sec in sections:
            name = by_type.get(type(sec))
            if name is None:
                raise TypeError(f"{type(sec).__name__} is not a section of MetaSDConfig")
            changes[name] = sec
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    # ----------------------------------------------------------- flat form
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetaSDConfig:
        """Build from flat keys; an unknown key raises :class:`ConfigError` naming it.

        Args:
            data: Flat key -> value (values of the right type; see
                :func:`metasd_pyg.runs.options.coerce` for strings).
        """
        keys = cls.keys()
        unknown = sorted(set(data) - set(keys))
        if unknown:
            close = difflib.get_close_matches(unknown[0], keys, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown config option(s): {', '.join(unknown)}{hint}")
        sections: dict[str, Any] = {name: sec.from_flat(data)
                                    for name, sec in cls.section_types().items()}
        return cls(**sections)

    @classmethod
    def flat(cls, **values: Any) -> MetaSDConfig:
        """Build from flat keyword options (``MetaSDConfig.flat(dim=64, sparsity=0.8)``).

        Args:
            **values: Flat key -> value.
        """
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        """The flat, JSON-serialisable form (the keys of flags and ``config.json``)."""
        out: dict[str, Any] = {}
        for sec in self.sections():
            out.update(sec.to_flat())
        return out

    def replace(self, **changes: Any) -> MetaSDConfig:
        """A validated copy with flat-key ``changes`` applied.

        Args:
            **changes: Flat key -> new value.
        """
        return self.from_dict({**self.to_dict(), **changes})

    @classmethod
    def from_preset(cls, name: str, **values: Any) -> MetaSDConfig:
        """A named preset (:mod:`metasd_pyg.training.presets`), ``values`` on top.

        Args:
            name: Preset name (``"paper"``, ``"paper-fb15k237"``).
            **values: Flat options that override the preset's.
        """
        from metasd_pyg.training.presets import preset_values

        return cls.from_dict({**preset_values(name), **values})

    @classmethod
    def from_saved(cls, data: Mapping[str, Any]) -> MetaSDConfig:
        """Build from a saved flat configuration (run folder, checkpoint).

        Options added after the configuration was written take the value its
        run used (each section's ``ADDED_LATER``), so resuming an older run keeps
        its trajectory.

        Args:
            data: Flat key -> value, as written by :meth:`to_dict`.
        """
        return cls.from_dict(saved_config_values(data))

    # ---------------------------------------------------------- derived
    @property
    def has_student(self) -> bool:
        """Whether the run trains a pruned student (``metasd``, ``oneshot``)."""
        return has_student(self.recipe.mode)

    @property
    def uses_meta(self) -> bool:
        """Whether the meta step runs (mode ``metasd`` with ``meta=True``)."""
        return runs_meta(self.recipe.mode) and self.meta.enabled


def added_later() -> dict[str, Any]:
    """Flat key -> value of every option added after runs were first saved (all sections)."""
    out: dict[str, Any] = {}
    for sec in MetaSDConfig.section_types().values():
        out.update(sec.ADDED_LATER)
    return out


def saved_config_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` of a saved configuration, with options added later filled in where absent.

    Args:
        values: Flat key -> value, as written by :meth:`MetaSDConfig.to_dict`.
    """
    return {**added_later(), **values}


def resumable_keys() -> frozenset[str]:
    """Flat keys a resumed run may change (they do not alter the trajectory so far)."""
    return frozenset(o.key for o in MetaSDConfig.options() if o.resumable)


#: The paper's GPU protocol on FB15k-237 (Li et al. 2022, Sec. 4; preset
#: ``paper-fb15k237``). Expected student test MRR about 0.39. Not runnable on
#: this repository's CPU budget.
PAPER_FB15K237 = MetaSDConfig.from_preset("paper-fb15k237", progress=True)
