r"""What one training step minimises: the loss and distillation sections and the objectives.

Paper: Li, Liu, Yang, Li, "Self-Distillation with Meta Learning for Knowledge
Graph Completion", Findings of EMNLP 2022,
https://aclanthology.org/2022.findings-emnlp.149/.

An objective turns a batch into a loss and the logits the trainer's parts
see. Three objectives make every training mode of the library:

* :class:`DenseObjective`: one dense model (the teacher alone, the
  same-non-zeros dense baseline, the teacher phase of one-shot pruning),
  :math:`\mathrm{CE}(f(\theta)) + \Omega(\theta) + w_\rho L_\rho(\theta)`;
* :class:`MaskedObjective`: the masked model alone, masks fixed (one-shot
  fine-tuning), the same loss on :math:`\theta \odot M`;
* :class:`MutualObjective`: teacher and pruned student in one step,

  .. math::
      L = \mathrm{CE}(T) + \Omega(\theta) + w_\rho L_\rho(\theta)
        + \lambda_T D(T, \mathrm{sg}(S))
        + a_S\,[\mathrm{CE}(S) + \Omega_S(\theta\odot M) + w_\rho L_\rho(\theta\odot M)
        + \lambda_S D(S, \mathrm{sg}(T))]

  with :math:`T = f(\theta)`, :math:`S = \gamma f(\theta \odot M)`
  (:math:`\gamma` = ``student_logit_scale``) and
  :math:`D(a, b) = 3\,\mathrm{KL}(a\|b) + \mathrm{KL}(b\|a)` at temperature 3.

Each objective is built from its own sections (:class:`LossConfig`,
:class:`DistillConfig`) and reports them (:meth:`Objective.sections`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor
from torch_geometric.nn.kge import KGEModel

from metasd_pyg.sections import Section, check
from metasd_pyg.training.losses import (
    KLWeights,
    MutualWeights,
    RegularizerName,
    entity_cross_entropy,
    fused_cross_entropy,
    mutual_logit_loss,
    regularizer,
    relation_cross_entropy,
    sample_candidates,
    tail_logits,
)
from metasd_pyg.training.views import compact_view

if TYPE_CHECKING:
    from metasd_pyg.training.engine import TableView
    from metasd_pyg.training.trainer import Trainer

#: Training losses over entities.
LossName = Literal["1-n", "sampled"]


@dataclass(frozen=True)
class LossConfig(Section):
    r"""The supervised part of the loss: entity cross-entropy, regulariser, relation prediction.

    Args:
        loss: 1-n (softmax over all entities) or sampled (softmax over the
            batch's tails plus num_negatives shared negatives).
        num_negatives: Shared negatives per step for loss=sampled.
        regularizer: dura (the official code's), n3 or none.
        regularizer_weight: Its weight lambda.
        student_regularizer_weight: Regulariser weight of the student's view
            (None = regularizer_weight). The student's coordinates are also the
            teacher's, so they get the teacher's penalty too.
        relation_weight: Weight of the relation-prediction auxiliary loss (0 =
            off; the official code uses 4 when on).
    """

    loss: LossName = "1-n"
    num_negatives: int = 4096
    regularizer: RegularizerName = "dura"
    regularizer_weight: float = 0.01
    student_regularizer_weight: float | None = 0.0
    relation_weight: float = 0.0

    def validate(self) -> None:
        check(self.num_negatives >= 1, f"num_negatives={self.num_negatives}: must be >= 1")
        check(self.regularizer_weight >= 0,
              f"regularizer_weight={self.regularizer_weight}: must be >= 0")
        check(self.student_regularizer_weight is None or self.student_regularizer_weight >= 0,
              f"student_regularizer_weight={self.student_regularizer_weight}: must be >= 0 "
              "or None")
        check(self.relation_weight >= 0, f"relation_weight={self.relation_weight}: must be >= 0")

    @property
    def student_lambda(self) -> float:
        """The regulariser weight of the student's view."""
        srw = self.student_regularizer_weight
        return self.regularizer_weight if srw is None else srw


@dataclass(frozen=True)
class DistillConfig(Section):
    r"""Mutual distillation between the teacher and its pruned student.

    Args:
        temperature: Distillation temperature tau.
        distill_weight_ts: Weight of KL(self || other) in the mutual step and of
            KL(T || S) in the virtual step.
        distill_weight_st: Weight of the reverse KL.
        teacher_distill: Scale of the teacher's distillation term (0 = the
            teacher ignores the student). 0 gives a better overall MRR on
            FB15k-237 and WN18RR at the CPU budget, but a worse long tail there
            and a worse student on Kinship and UMLS (docs/training.md).
        teacher_distill_warmup_epochs: Epochs over which the teacher's
            distillation scale grows linearly from 0 to teacher_distill (per
            step; 0 = no warm-up).
        student_distill: Scale of the student's distillation term.
        student_weight: Weight of the student's whole loss against the
            teacher's (1 = the official code's equal weighting).
        student_logit_scale: Factor on the student's logits in its loss
            (cross-entropy and both KL terms; the meta step's quiz too). The
            student scores with a few units per entity, so at 1 its sharp
            probabilities need large coordinates, which the teacher shares and
            its scores then carry; a factor above 1 lets the student be sharp
            without them. Rankings, hence evaluation and export, do not depend
            on it. Default 3, about :math:`(1 - s)^{-1/2}` at the default
            sparsity :math:`s = 0.9` (chosen on valid MRR; ``docs/training.md``);
            1 = the paper's.
    """

    #: Runs saved before these options existed ran without them.
    ADDED_LATER: ClassVar[Mapping[str, Any]] = {"teacher_distill_warmup_epochs": 0.0,
                                                "student_logit_scale": 1.0}

    temperature: float = 3.0
    distill_weight_ts: float = 3.0
    distill_weight_st: float = 1.0
    teacher_distill: float = 1.0
    teacher_distill_warmup_epochs: float = 0.0
    student_distill: float = 1.0
    student_weight: float = 3.0
    student_logit_scale: float = 3.0

    def validate(self) -> None:
        check(self.temperature > 0, f"temperature={self.temperature}: must be > 0")
        check(self.teacher_distill_warmup_epochs >= 0,
              f"teacher_distill_warmup_epochs={self.teacher_distill_warmup_epochs}: must be >= 0")
        check(self.student_weight > 0, f"student_weight={self.student_weight}: must be > 0")
        check(self.student_logit_scale > 0,
              f"student_logit_scale={self.student_logit_scale}: must be > 0")

    @property
    def kl(self) -> KLWeights:
        """The two-way KL weights."""
        return KLWeights(self.distill_weight_ts, self.distill_weight_st)


@dataclass(frozen=True)
class StepOutput:
    """What an objective computed on one batch.

    Attributes:
        loss: The loss to minimise (graph kept until the backward pass).
        teacher_logits: ``[B, C]`` logits of the dense model (or of the only model).
        student_logits: ``[B, C]`` scores of the pruned student (before its loss's logit
            scale, which the fused loss applies), or ``None``.
    """

    loss: Tensor
    teacher_logits: Tensor
    student_logits: Tensor | None


@dataclass(frozen=True)
class StudentLoss:
    r"""The student's loss in the mutual step, one definition for the real and the virtual step.

    .. math::
        L_S = a_S\,\big[\mathrm{CE}(z_S) + \lambda_S D(z_S, z_T)
              + \Omega_{\lambda'}(\theta\odot M) + w_\rho L_\rho(\theta\odot M)\big],
        \qquad D(a, b) = w_f\,\mathrm{KL}(p_a\|p_b) + w_r\,\mathrm{KL}(p_b\|p_a)

    at temperature :math:`\tau`. :class:`MutualObjective` adds it (with
    :math:`z_T` detached) to the teacher's loss; the meta step's virtual
    student step (:func:`~metasd_pyg.training.meta.meta_gradient`) takes one
    gradient step on the same :math:`L_S` (with :math:`z_T` kept in the graph, so
    the meta-gradient reaches the teacher). Both read these fields, so the two
    cannot drift apart.

    Attributes:
        temperature: :math:`\tau`.
        kl: :math:`w_f` (``forward``: KL(student || teacher)) and :math:`w_r`
            (``reverse``: KL(teacher || student)).
        distill_scale: :math:`\lambda_S` (``student_distill``).
        weight: :math:`a_S` (``student_weight``).
        regularizer: Regulariser name.
        regularizer_weight: :math:`\lambda'` (``student_regularizer_weight``,
            else ``regularizer_weight``).
        relation_weight: :math:`w_\rho`.
        logit_scale: :math:`\gamma` (``student_logit_scale``): :math:`z_S` is
            :meth:`logits`, :math:`\gamma` times the masked model's scores.
    """

    temperature: float = 3.0
    kl: KLWeights = KLWeights()
    distill_scale: float = 1.0
    weight: float = 3.0
    regularizer: str = "dura"
    regularizer_weight: float = 0.0
    relation_weight: float = 0.0
    logit_scale: float = 1.0

    def logits(self, model: KGEModel, batch: Tensor, view: Mapping[str, Tensor],
               candidates: Tensor | None, *, twice_differentiable: bool = False) -> Tensor:
        r""":math:`z_S = \gamma\, f(\theta\odot M)`: the student's logits in its loss.

        The real step hands :math:`f(\theta\odot M)` and :math:`\gamma` to the fused
        loss (:attr:`~metasd_pyg.training.losses.MutualWeights.student_logit_scale`),
        which applies the factor without a pass of its own; the virtual step uses
        these logits.

        Args:
            model: The PyG model.
            batch: ``[B, 3]`` rows.
            view: The student's (masked, possibly compacted) tables.
            candidates: Shared candidates (``None``: every entity).
            twice_differentiable: As in :func:`~metasd_pyg.training.losses.tail_logits`.
        """
        z = tail_logits(model, batch, view, candidates, twice_differentiable=twice_differentiable)
        return z if self.logit_scale == 1.0 else z * self.logit_scale

    def mutual_weights(self, teacher_scale: float) -> MutualWeights:
        r"""The fused mutual loss's weights: this loss's :math:`\tau, w_f, w_r` (the
        teacher's distillation uses the same), :math:`\lambda_S, a_S, \gamma`, and the
        teacher's weight 1 and distillation scale :math:`\lambda_T`.

        Args:
            teacher_scale: :math:`\lambda_T` at this step.
        """
        return MutualWeights(temperature=self.temperature, kl=self.kl,
                             teacher_scale=teacher_scale, student_scale=self.distill_scale,
                             teacher_weight=1.0, student_weight=self.weight,
                             student_logit_scale=self.logit_scale)

    def aux(self, model: KGEModel, batch: Tensor, view: Mapping[str, Tensor]) -> Tensor:
        r"""Unweighted :math:`\Omega_{\lambda'}(\theta\odot M) + w_\rho L_\rho(\theta\odot M)`.

        Args:
            model: The PyG model.
            batch: ``[B, 3]`` rows.
            view: The student's (masked) full tables.
        """
        out = regularizer(self.regularizer, model, batch, self.regularizer_weight, view)
        if self.relation_weight > 0:
            out = out + self.relation_weight * relation_cross_entropy(model, batch, view)
        return out

    def logit_grad(self, teacher_logits: Tensor, student_logits: Tensor, target: Tensor,
                   *, detach_student: bool = False) -> Tensor:
        r""":math:`G = \partial L_S / \partial z_S` in closed form, differentiable in the logits.

        With :math:`s = \mathrm{softmax}(z_S)`, :math:`p_x = \mathrm{softmax}(z_x/\tau)`
        (means over the :math:`B` rows):

        .. math::
            G = \frac{a_S}{B}\Big[s - e_t + \frac{\lambda_S w_f}{\tau}
                p_S \odot (\log p_S - \log p_T - \mathrm{KL}(p_S\|p_T))
                + \frac{\lambda_S w_r}{\tau}(p_S - p_T)\Big].

        The virtual step's gradient is :math:`J_S^\top G` (one vector-Jacobian
        product of the student forward); differentiating it again goes through
        this short elementwise graph instead of the double backward of the
        log-softmaxes. ``detach_student`` drops the graph through :math:`z_S`
        (exact for the official path, whose meta-gradient is taken w.r.t. the
        teacher only).

        Args:
            teacher_logits: ``[B, C]`` :math:`z_T` (with graph).
            student_logits: ``[B, C]`` :math:`z_S`.
            target: ``[B]`` answer columns.
            detach_student: Treat :math:`z_S` as a constant.
        """
        tau = self.temperature
        w_f, w_r = self.distill_scale * self.kl.forward, self.distill_scale * self.kl.reverse
        z_s = student_logits.detach() if detach_student else student_logits
        n = z_s.size(0)
        rows = torch.arange(n, device=z_s.device)
        grad = torch.softmax(z_s, dim=-1)
        onehot = torch.zeros_like(grad)
        onehot[rows, target] = 1.0
        grad = grad - onehot
        log_t = torch.log_softmax(teacher_logits / tau, dim=-1)
        log_s = torch.log_softmax(z_s / tau, dim=-1)
        p_s = log_s.exp()
        if w_f:
            diff = log_s - log_t
            kl_st = (p_s * diff).sum(-1, keepdim=True)
            grad = grad + (w_f / tau) * p_s * (diff - kl_st)
        if w_r:
            grad = grad + (w_r / tau) * (p_s - log_t.exp())
        return grad * (self.weight / n)

    def value(self, model: KGEModel, batch: Tensor, view: Mapping[str, Tensor],
              student_logits: Tensor, teacher_logits: Tensor, target: Tensor) -> Tensor:
        """:math:`L_S` by autograd composition (the reference of the fused and closed forms).

        Args:
            model: The PyG model.
            batch: ``[B, 3]`` rows.
            view: The student's (masked) full tables.
            student_logits: ``[B, C]`` :math:`z_S`.
            teacher_logits: ``[B, C]`` :math:`z_T` (detach it for the real step's value).
            target: ``[B]`` answer columns.
        """
        from metasd_pyg.training.losses import distillation_loss

        logit = entity_cross_entropy(student_logits, target) + self.distill_scale * \
            distillation_loss(student_logits, teacher_logits, self.temperature, self.kl)
        return self.weight * (logit + self.aux(model, batch, view))


class Objective:
    """Base of the objectives: candidate sampling and the auxiliary losses of one view.

    Args:
        loss: The loss section.
    """

    #: Whether the objective scores the pruned student (the trainer then
    #: selects the model on the student's valid MRR).
    uses_student: bool = False

    def __init__(self, loss: LossConfig | None = None) -> None:
        self.loss = loss if loss is not None else LossConfig()

    def sections(self) -> tuple[Section, ...]:
        """The configuration sections the objective runs with."""
        return (self.loss,)

    def candidates(self, batch: Tensor, num_entities: int, generator: torch.Generator
                   ) -> tuple[Tensor | None, Tensor]:
        """``(shared candidates or None, target column)`` of a batch.

        Args:
            batch: ``[B, 3]`` rows of the reciprocal stream.
            num_entities: Entities of the graph.
            generator: The run's random generator (negatives are drawn from it).
        """
        if self.loss.loss == "sampled":
            return sample_candidates(batch, num_entities, self.loss.num_negatives, generator)
        return None, batch[:, 2]

    def aux(self, trainer: Trainer, batch: Tensor, weights: Mapping[str, Tensor] | None,
            lam: float) -> Tensor:
        """Regulariser (weight ``lam``) and relation-prediction loss of one view.

        Args:
            trainer: The trainer (its model).
            batch: ``[B, 3]`` rows.
            weights: The view's tables (``None`` = the model's own).
            lam: Regulariser weight.
        """
        out = regularizer(self.loss.regularizer, trainer.model, batch, lam, weights)
        if self.loss.relation_weight > 0:
            out = out + self.loss.relation_weight * relation_cross_entropy(trainer.model, batch,
                                                                           weights)
        return out

    def __call__(self, trainer: Trainer, view: TableView) -> StepOutput:
        """The loss and logits of one batch.

        Args:
            trainer: The trainer (model, step counters).
            view: The step's batch, candidates, answer columns, tables and
                masks (:class:`~metasd_pyg.training.engine.TableView`: whole
                tables or the gathered rows).
        """
        raise NotImplementedError


class DenseObjective(Objective):
    """One dense model: cross-entropy, regulariser, relation prediction."""

    def __call__(self, trainer: Trainer, view: TableView) -> StepOutput:
        z = tail_logits(trainer.model, view.batch, view.weights, view.candidates)
        loss = fused_cross_entropy(z, view.target) + self.aux(
            trainer, view.batch, view.weights, self.loss.regularizer_weight)
        return StepOutput(loss, z, None)


class MaskedObjective(Objective):
    """The masked model alone (masks fixed): the dense loss on :math:`\\theta \\odot M`."""

    uses_student = True

    def __call__(self, trainer: Trainer, view: TableView) -> StepOutput:
        assert view.masks is not None, "MaskedObjective needs the trainer's masks"
        student = view.student()
        z = tail_logits(trainer.model, view.batch, student, view.candidates)
        loss = fused_cross_entropy(z, view.target) + self.aux(
            trainer, view.batch, student, self.loss.regularizer_weight)
        return StepOutput(loss, z, z)


class MutualObjective(Objective):
    """Teacher and masked student of the same parameters, mutual distillation (module docstring).

    Args:
        loss: The loss section.
        distill: The distillation section.
    """

    uses_student = True

    def __init__(self, loss: LossConfig | None = None, distill: DistillConfig | None = None
                 ) -> None:
        super().__init__(loss)
        self.distill = distill if distill is not None else DistillConfig()

    def sections(self) -> tuple[Section, ...]:
        return (self.loss, self.distill)

    def teacher_scale(self, step: int, steps_per_epoch: int) -> float:
        """The teacher's distillation scale at global step ``step`` (after the warm-up:
        ``teacher_distill``; during it, linear from 0).

        Args:
            step: Global step (0-based).
            steps_per_epoch: Batches per epoch.
        """
        d = self.distill
        warm = d.teacher_distill_warmup_epochs * steps_per_epoch
        if warm <= 0 or step >= warm:
            return d.teacher_distill
        return d.teacher_distill * step / warm

    def student_loss(self) -> StudentLoss:
        """The student's loss terms (shared by the real step and the meta step's virtual step)."""
        d, lo = self.distill, self.loss
        return StudentLoss(temperature=d.temperature, kl=d.kl, distill_scale=d.student_distill,
                           weight=d.student_weight, regularizer=lo.regularizer,
                           regularizer_weight=lo.student_lambda,
                           relation_weight=lo.relation_weight, logit_scale=d.student_logit_scale)

    def __call__(self, trainer: Trainer, view: TableView) -> StepOutput:
        assert view.masks is not None, "MutualObjective needs the trainer's masks"
        student = self.student_loss()
        batch, candidates, target = view.batch, view.candidates, view.target
        masked = view.student()
        z_t = tail_logits(trainer.model, batch, view.weights, candidates)
        # the masked model's scores; the fused loss takes them times gamma (StudentLoss.logits)
        z_s = tail_logits(trainer.model, batch, compact_view(masked, view.masks, view.units),
                          candidates)
        # CE and distillation of both views, fused (closed-form gradients; see losses.py)
        weights = student.mutual_weights(
            self.teacher_scale(trainer.global_step, trainer.steps_per_epoch))
        logit_loss = mutual_logit_loss(z_t, z_s, target, weights)
        l_t = self.aux(trainer, batch, view.weights, self.loss.regularizer_weight)
        l_s = student.aux(trainer.model, batch, masked)
        return StepOutput(logit_loss + l_t + student.weight * l_s, z_t, z_s)
