r"""Typed configuration of a MetaSD training run (every option, with its default and why).

Paper: Li, Liu, Yang, Li, "Self-Distillation with Meta Learning for Knowledge
Graph Completion", Findings of EMNLP 2022,
https://aclanthology.org/2022.findings-emnlp.149/.

Defaults are the official MetaSD code's where it has one (Adagrad, lr 0.1,
batch 1000, DURA, temperature 3 with the 3:1 two-way KL, virtual-step lr 0.1,
meta lr 1e-4, 2% quiz slice) except three chosen on this repository's CPU
protocol (``docs/training.md``): DURA weight 0.01, ``student_weight=3`` and
``student_regularizer_weight=0`` (the official code weighs both views
equally and regularises the student's coordinates twice, once per view).
Baselines and ablations are switches: ``mode`` and ``meta``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from metasd_pyg.errors import ConfigError
from metasd_pyg.models.factory import MODEL_NAMES
from metasd_pyg.pruning.importance import DEFAULT_IMPORTANCE
from metasd_pyg.pruning.pruner import DEFAULT_K_MAX_FACTOR

#: Training modes (baselines and ablations are modes of the same trainer).
MODES: tuple[str, ...] = ("metasd", "teacher", "dense_same_nnz", "oneshot")

#: Options added after runs were first saved, with the value that reproduces
#: those older runs. A saved configuration (run folder, checkpoint) that lacks
#: one of them was written before it existed and ran with this value; it is
#: read with it (:func:`saved_config_values`), so resuming such a run keeps its
#: trajectory instead of silently switching to the newer default.
ADDED_LATER: dict[str, Any] = {"k_max_factor": None, "teacher_distill_warmup_epochs": 0.0}

#: Options a resumed :class:`~metasd_pyg.training.trainer.Trainer` may change
#: (they do not alter the training trajectory up to the checkpoint).
TRAINER_RESUMABLE: frozenset[str] = frozenset({
    "epochs", "finetune_epochs", "patience", "progress", "threads", "device",
    "eval_batch_size",
})


def saved_config_values(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` of a saved configuration, with :data:`ADDED_LATER` filled in where absent.

    Args:
        values: Field name -> value, as written by :meth:`MetaSDConfig.to_dict`.
    """
    return {**ADDED_LATER, **values}


#: Mask strategies of :class:`metasd_pyg.pruning.Pruner`.
STRATEGIES: tuple[str, ...] = ("global", "aligned", "degree", "row_topk")


@dataclass
class MetaSDConfig:
    r"""All options of a training run.

    Args:
        model: ``"complex"`` (the paper's), ``"distmult"``, ``"rotate"`` or ``"transe"``.
        dim: Model dimension (complex dimensions for ComplEx/RotatE).
        reciprocal: Train on ``(h, r, t)`` and ``(t, r + R, h)`` (Lacroix et al. 2018).
        epochs: Training epochs (of the teacher phase for ``mode="oneshot"``).
        batch_size: Rows of the reciprocal training stream per step.
        lr: Learning rate of the main (mutual) optimiser.
        optimizer: ``"adagrad"`` (paper) or ``"adam"``.
        init_scale: If set, re-initialise all tables as ``N(0, 1) * init_scale``
            (kbc's init, 1e-3); ``None`` keeps PyG's initialisation.
        loss: ``"1-n"`` (softmax over all entities) or ``"sampled"`` (softmax
            over the batch's tails plus ``num_negatives`` shared negatives).
        num_negatives: Shared negatives per step for ``loss="sampled"``.
        regularizer: ``"dura"`` (the official code's), ``"n3"`` or ``"none"``.
        regularizer_weight: Its weight :math:`\lambda`.
        student_regularizer_weight: Regulariser weight of the student's view
            (``None`` = ``regularizer_weight``). The student's coordinates are
            also the teacher's, so they get the teacher's penalty too.
        relation_weight: Weight of the relation-prediction auxiliary loss
            (0 = off; the official code uses 4 when on).
        temperature: Distillation temperature :math:`\tau`.
        distill_weight_ts: Weight of :math:`\mathrm{KL}(\text{self}\|\text{other})`
            in the mutual step and of :math:`\mathrm{KL}(T\|S)` in the virtual step.
        distill_weight_st: Weight of the reverse KL.
        teacher_distill: Scale of the teacher's distillation term (0 = the
            teacher ignores the student).
        teacher_distill_warmup_epochs: Epochs over which the teacher's
            distillation scale grows linearly from 0 to ``teacher_distill``
            (per step; 0 = no warm-up). Early on the student knows little, and
            the teacher's KL term pulls it toward the untrained student.
        student_distill: Scale of the student's distillation term.
        student_weight: Weight of the student's whole loss against the
            teacher's (1 = the official code's equal weighting).
        meta: Run the one-step meta update (``False`` = mutual-distillation ablation).
        meta_every: Run the meta step every ``meta_every`` steps.
        meta_lr: Learning rate of the teacher's meta optimiser.
        meta_optimizer: Optimiser of the meta update (``"adagrad"`` or ``"adam"``).
        virtual_lr: Step size :math:`\alpha` of the virtual student.
        meta_path: ``"official"`` (through soft targets only) or ``"full"``.
        quiz_fraction: Share of the training triples held out of the training
            stream as the quiz slice (only when the meta step runs).
        quiz_batch_size: Rows per quiz batch.
        meta_batch_size: Rows of each training batch used by the virtual step
            (the meta step's cost scales with it, not with ``batch_size``).
        strategy: Mask strategy: ``"global"``, ``"aligned"``, ``"degree"``, ``"row_topk"``.
        sparsity: Target share of pruned weights of the student.
        alpha: Exponent of the degree-aware budget :math:`k_e \propto (d_e + 1)^\alpha`.
        k_min: Minimum kept dimensions per entity row (degree strategy).
        k_max: Maximum kept dimensions per entity row (degree strategy; ``None`` =
            ``k_max_factor`` decides). With the ``"max"`` relation rule every relation
            row keeps the longest entity prefix, so on graphs with hubs (FB15k-237) a
            cap stops relations from taking a third of the budget.
        k_max_factor: Without ``k_max``, cap the degree prefixes at this multiple
            of the mean prefix length (3.2: 32 of 100 units at 90% sparsity, the
            cap measured best on FB15k-237 and neutral elsewhere); ``None`` = no cap.
        relation_rule: How relation rows are masked by nested strategies: ``"max"``
            (the longest entity prefix) or ``"full"`` (dense); see ``docs/pruning.md``.
        importance: Ranking of embedding dimensions for nested strategies:
            ``"index"`` (a fixed order: masks change only with the sparsity),
            ``"magnitude"`` or ``"product"`` (re-ranked from the current weights
            at every recomputation); see :mod:`metasd_pyg.pruning.importance`.
        random_fraction: Share of the kept budget chosen at random.
        prune_every_epochs: Recompute masks every this many epochs.
        prune_every_steps: If set, recompute masks every this many steps instead.
        ramp_epochs: Epochs of a gradual ramp from 0 to the target sparsity.
        finetune_epochs: ``mode="oneshot"``: fine-tuning epochs with the mask fixed.
        mode: ``"metasd"`` (teacher + student), ``"teacher"`` (dense teacher
            alone), ``"dense_same_nnz"`` (dense model with as many weights as
            the student has non-zeros) or ``"oneshot"`` (train the teacher, prune
            once, fine-tune the masked model).
        eval_every: Validate every this many epochs.
        patience: Early stopping after this many validations without a better
            student valid MRR (``None`` = never stop early).
        valid_max_queries: Cap on validation queries during training (``None`` = all).
        eval_batch_size: Batch size of the evaluator (``None`` = its default).
        checkpoint_every: Write a checkpoint every this many epochs (with a checkpoint dir).
        seed: Seed of the model initialisation, shuffling, sampling and masks.
        device: ``"auto"`` (CUDA if available, else CPU) or a torch device string.
        progress: Show a tqdm progress bar on stderr.
        threads: If set, ``torch.set_num_threads`` for the run.
        compact_student: Score the student on the columns some entity row
            keeps only (:func:`~metasd_pyg.training.views.compact_view`): the
            same logits, cheaper matrix products when the masks leave whole
            columns empty (aligned, or nested with ``k_max``). ComplEx and
            DistMult only; ``False`` scores on the full masked tables.
        flush_denormal: On CPU, flush denormal floats to zero during
            :meth:`~metasd_pyg.training.trainer.Trainer.fit` (restored to off
            afterwards). Confident 1-N softmaxes produce denormal
            probabilities whose products slow CPU matrix products several
            times (measured: 0.17 s -> 0.68 s per Kinship epoch within 12 epochs).
    """

    model: str = "complex"
    dim: int = 100
    reciprocal: bool = True
    epochs: int = 100
    batch_size: int = 1000
    lr: float = 0.1
    optimizer: str = "adagrad"
    init_scale: float | None = 1e-3
    loss: str = "1-n"
    num_negatives: int = 4096
    regularizer: str = "dura"
    regularizer_weight: float = 0.01
    student_regularizer_weight: float | None = 0.0
    relation_weight: float = 0.0
    temperature: float = 3.0
    distill_weight_ts: float = 3.0
    distill_weight_st: float = 1.0
    teacher_distill: float = 1.0
    teacher_distill_warmup_epochs: float = 0.0
    student_distill: float = 1.0
    student_weight: float = 3.0
    meta: bool = True
    meta_every: int = 4
    meta_lr: float = 1e-4
    meta_optimizer: str = "adagrad"
    virtual_lr: float = 0.1
    meta_path: str = "official"
    quiz_fraction: float = 0.02
    quiz_batch_size: int = 256
    meta_batch_size: int = 256
    strategy: str = "degree"
    sparsity: float = 0.9
    alpha: float = 0.5
    k_min: int = 1
    k_max: int | None = None
    k_max_factor: float | None = DEFAULT_K_MAX_FACTOR
    relation_rule: str = "max"
    importance: str = DEFAULT_IMPORTANCE
    random_fraction: float = 0.0
    prune_every_epochs: int = 1
    prune_every_steps: int | None = None
    ramp_epochs: int = 0
    finetune_epochs: int = 0
    mode: str = "metasd"
    eval_every: int = 5
    patience: int | None = None
    valid_max_queries: int | None = None
    eval_batch_size: int | None = None
    checkpoint_every: int = 1
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    threads: int | None = None
    compact_student: bool = True
    flush_denormal: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`~metasd_pyg.errors.ConfigError` naming the first invalid value."""
        from metasd_pyg.pruning import IMPORTANCES, RELATION_RULES
        from metasd_pyg.training.losses import REGULARIZERS
        from metasd_pyg.training.meta import META_PATHS
        from metasd_pyg.training.optim import OPTIMIZERS

        def check(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(msg)

        check(self.model.lower() in MODEL_NAMES, f"model={self.model!r}: expected one of "
              f"{', '.join(MODEL_NAMES)}")
        check(self.dim >= 1, f"dim={self.dim}: must be >= 1")
        check(self.epochs >= 0, f"epochs={self.epochs}: must be >= 0")
        check(self.batch_size >= 1, f"batch_size={self.batch_size}: must be >= 1")
        check(self.lr > 0, f"lr={self.lr}: must be > 0")
        check(self.meta_lr > 0, f"meta_lr={self.meta_lr}: must be > 0")
        check(self.optimizer in OPTIMIZERS, f"optimizer={self.optimizer!r}: expected one of "
              f"{', '.join(OPTIMIZERS)}")
        check(self.meta_optimizer in OPTIMIZERS, f"meta_optimizer={self.meta_optimizer!r}: "
              f"expected one of {', '.join(OPTIMIZERS)}")
        check(self.loss in ("1-n", "sampled"), f"loss={self.loss!r}: expected '1-n' or 'sampled'")
        check(self.num_negatives >= 1, f"num_negatives={self.num_negatives}: must be >= 1")
        check(self.regularizer in REGULARIZERS, f"regularizer={self.regularizer!r}: expected "
              f"one of {', '.join(REGULARIZERS)}")
        check(self.regularizer_weight >= 0, "regularizer_weight must be >= 0")
        check(self.relation_weight >= 0, "relation_weight must be >= 0")
        check(self.student_regularizer_weight is None or self.student_regularizer_weight >= 0,
              "student_regularizer_weight must be >= 0 or None")
        check(self.teacher_distill_warmup_epochs >= 0,
              f"teacher_distill_warmup_epochs={self.teacher_distill_warmup_epochs}: must be >= 0")
        check(self.student_weight > 0, f"student_weight={self.student_weight}: must be > 0")
        check(self.temperature > 0, f"temperature={self.temperature}: must be > 0")
        check(self.meta_every >= 1, f"meta_every={self.meta_every}: must be >= 1")
        check(self.meta_path in META_PATHS, f"meta_path={self.meta_path!r}: expected one of "
              f"{', '.join(META_PATHS)}")
        check(0.0 < self.quiz_fraction < 1.0, f"quiz_fraction={self.quiz_fraction}: must be "
              "in (0, 1)")
        check(self.quiz_batch_size >= 1, "quiz_batch_size must be >= 1")
        check(self.meta_batch_size >= 1, "meta_batch_size must be >= 1")
        check(self.strategy in STRATEGIES, f"strategy={self.strategy!r}: expected one of "
              f"{', '.join(STRATEGIES)}")
        check(0.0 <= self.sparsity < 1.0, f"sparsity={self.sparsity}: must be in [0, 1)")
        check(0.0 <= self.random_fraction <= 1.0, "random_fraction must be in [0, 1]")
        check(self.k_min >= 1, f"k_min={self.k_min}: must be >= 1")
        check(self.k_max is None or self.k_max >= self.k_min,
              f"k_max={self.k_max}: must be >= k_min={self.k_min} or None")
        check(self.k_max_factor is None or 1.0 <= self.k_max_factor < float("inf"),
              f"k_max_factor={self.k_max_factor}: must be a finite number >= 1 or None")
        check(self.relation_rule in RELATION_RULES, f"relation_rule={self.relation_rule!r}: "
              f"expected one of {', '.join(RELATION_RULES)}")
        check(self.importance in IMPORTANCES, f"importance={self.importance!r}: expected one of "
              f"{', '.join(IMPORTANCES)}")
        check(self.prune_every_epochs >= 1, "prune_every_epochs must be >= 1")
        check(self.prune_every_steps is None or self.prune_every_steps >= 1,
              "prune_every_steps must be >= 1 or None")
        check(self.ramp_epochs >= 0, "ramp_epochs must be >= 0")
        check(self.finetune_epochs >= 0, "finetune_epochs must be >= 0")
        check(self.mode in MODES, f"mode={self.mode!r}: expected one of {', '.join(MODES)}")
        check(self.eval_every >= 1, f"eval_every={self.eval_every}: must be >= 1")
        check(self.patience is None or self.patience >= 1, "patience must be >= 1 or None")
        check(self.checkpoint_every >= 1, "checkpoint_every must be >= 1")

    @property
    def has_student(self) -> bool:
        """Whether the run trains a pruned student (``metasd``, ``oneshot``)."""
        return self.mode in ("metasd", "oneshot")

    @property
    def uses_meta(self) -> bool:
        """Whether the meta step runs (mode ``metasd`` with ``meta=True``)."""
        return self.mode == "metasd" and self.meta

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of all fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetaSDConfig:
        """Build from a dict; unknown keys raise :class:`ConfigError` naming them.

        Args:
            data: Field name -> value.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown config option(s): {', '.join(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> MetaSDConfig:
        """A copy with ``changes`` applied (validated).

        Args:
            **changes: Field name -> new value.
        """
        return dataclasses.replace(self, **changes)


#: The paper's GPU protocol on FB15k-237 (Li et al. 2022, Sec. 4): ComplEx rank
#: 2000, 300 epochs, batch 5000 (the official script's defaults otherwise). Expected
#: student test MRR about 0.39. Not runnable on this repository's CPU budget.
PAPER_FB15K237 = MetaSDConfig(
    model="complex", dim=2000, epochs=300, batch_size=5000, lr=0.1, optimizer="adagrad",
    regularizer="dura", regularizer_weight=0.1, student_weight=1.0,
    student_regularizer_weight=None, strategy="global", sparsity=0.9, meta=True, meta_every=1,
    meta_batch_size=5000, meta_lr=1e-4, virtual_lr=0.1, eval_every=5, progress=True,
)
