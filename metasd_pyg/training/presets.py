"""Named presets: flat option values that reproduce a published configuration.

A preset sits between the defaults and everything a user writes: the
resolution order of a run is defaults < quick-start profile (synthetic data
only) < preset < configuration file < flags (``metasd-pyg train --preset
paper``), and in Python ``MetaSDConfig.from_preset("paper", epochs=50)``.
The defaults of this library are chosen on measurements
(``docs/training.md``, "Defaults and why"); a preset keeps the paper's own
choices one flag away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from metasd_pyg.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """A named set of flat option values.

    Attributes:
        name: The preset's name (``--preset NAME``).
        description: One line for ``--help``.
        values: Flat key -> value (validated when applied).
    """

    name: str
    description: str
    values: dict[str, Any] = field(default_factory=dict)


#: The official MetaSD code's method (Li et al., Findings of EMNLP 2022,
#: https://aclanthology.org/2022.findings-emnlp.149/): global magnitude masks,
#: the meta step at every step on the whole batch, both views weighted equally,
#: the student's logits unscaled, and both views regularised (DURA 0.1), at this
#: library's model size and epochs.
PAPER_PRESET = Preset(
    "paper",
    "the official MetaSD code's method: global magnitude masks, meta step every step on "
    "the whole batch, equal student weight, unscaled student logits, DURA 0.1 on both views",
    {"strategy": "global", "meta": True, "meta_every": 1, "meta_batch_size": 1000,
     "meta_path": "official", "student_weight": 1.0, "student_logit_scale": 1.0,
     "student_regularizer_weight": None,
     "regularizer_weight": 0.1, "teacher_distill": 1.0, "student_distill": 1.0,
     "optimizer": "adagrad", "lr": 0.1, "batch_size": 1000},
)

#: The paper's GPU protocol on FB15k-237 (Sec. 4): ComplEx rank 2000, 300 epochs,
#: batch 5000; expected student test MRR about 0.39. Not runnable on a CPU budget.
PAPER_FB15K237_PRESET = Preset(
    "paper-fb15k237",
    "the paper's GPU protocol on FB15k-237: the paper preset at rank 2000, 300 epochs, "
    "batch 5000",
    {**PAPER_PRESET.values, "model": "complex", "dim": 2000, "epochs": 300, "batch_size": 5000,
     "meta_batch_size": 5000, "eval_every": 5},
)

#: Name -> preset.
PRESETS: dict[str, Preset] = {p.name: p for p in (PAPER_PRESET, PAPER_FB15K237_PRESET)}


def preset_values(name: str) -> dict[str, Any]:
    """The flat values of preset ``name``.

    Args:
        name: One of :data:`PRESETS`.

    Raises:
        ConfigError: Unknown name (the known ones listed).
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return dict(PRESETS[name].values)
