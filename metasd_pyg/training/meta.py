r"""One-step meta self-distillation (the meta step of MetaSD).

Paper: Li, Liu, Yang, Li, "Self-Distillation with Meta Learning for Knowledge
Graph Completion", Findings of EMNLP 2022,
https://aclanthology.org/2022.findings-emnlp.149/ (after MetaDistil, Zhou,
Xu, McAuley, ACL 2022, https://arxiv.org/abs/2106.04570).

Notation: :math:`\theta` the teacher's parameters, :math:`M` the masks,
:math:`S(\phi) = f(\phi \odot M)` the student computed from parameters
:math:`\phi`, :math:`T(\theta) = f(\theta)` the teacher. The student shares
the teacher's parameters, so at the current step :math:`\phi = \theta` in
value. We make :math:`\phi` a separate leaf (a detached copy of
:math:`\theta`, built once per step) to tell the two roles apart:

1. Virtual student:
   :math:`\phi' = \phi - \alpha\,\nabla_\phi L_v(\phi, \theta)`, where
   :math:`L_v` is the student's real loss of the mutual step
   (:class:`~metasd_pyg.training.objective.StudentLoss`, one definition for both),
   :math:`L_v = a_S[\mathrm{CE}(S(\phi)) + \lambda_S(w_f\,\mathrm{KL}(S(\phi)\|T(\theta))
   + w_r\,\mathrm{KL}(T(\theta)\|S(\phi))) + \Omega_{\lambda'}(\phi \odot M)
   + w_\rho L_\rho(\phi\odot M)]`,
   on the training batch (``create_graph=True``: :math:`\phi'` is a
   differentiable function of :math:`\phi` and :math:`\theta`). The real step
   sees :math:`T` through a stop-gradient; the virtual step keeps it in the graph,
   which is the path the meta-gradient takes. The virtual step is plain SGD
   with step :math:`\alpha` (``virtual_lr``), not the main optimiser.
2. Quiz: :math:`L_q(\phi') = \mathrm{CE}(S(\phi'))` on a quiz batch drawn from
   a slice of the training triples held out of the training stream.
3. Meta-gradient, two paths:

   * ``"official"`` (the MetaSD code: weights copied before the virtual step):
     :math:`g = \partial L_q / \partial\theta
     = -\alpha\, (\partial^2 L_v / \partial\theta\,\partial\phi)^\top
     \nabla_{\phi'} L_q`: the meta-gradient reaches :math:`\theta` only
     through the teacher's soft targets in the KL terms of :math:`L_v`.
   * ``"full"``: substitute :math:`\phi = \theta` before differentiating,
     :math:`g = dL_q/d\theta = \partial L_q/\partial\theta
     + \partial L_q/\partial\phi = (I - \alpha \nabla^2_{\phi\phi} L_v
     - \alpha \nabla^2_{\theta\phi} L_v)^\top \nabla_{\phi'} L_q`: also the
     direct path (the student's own weights are the teacher's), including the
     student Hessian term.

   Both come out of one :func:`torch.autograd.grad` call over
   :math:`(\theta, \phi)`; ``"full"`` adds the :math:`\phi` part.
4. The teacher takes a step with its own optimiser and learning rate on
   :math:`g` (queued by :class:`MetaStep`; the trainer applies it after the
   mutual step's backward pass, see :mod:`metasd_pyg.training.callbacks`).

Default path: ``"official"``: it is the paper's algorithm (results stay
comparable with the official code), and it keeps the meta step a pure
"learning to teach" signal. The extra direct term of ``"full"`` is
:math:`\nabla_{\phi'} L_q`, an ordinary supervised gradient of the quiz loss
on the kept coordinates: with it the held-out quiz slice becomes training
data for the student through the meta optimiser.

The meta step runs its own forwards on ``batch_size`` rows of the training
batch (default 256), so its cost does not grow with the training batch.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor
from torch_geometric.nn.kge import KGEModel

from metasd_pyg.errors import ConfigError
from metasd_pyg.sections import Section, check, option
from metasd_pyg.training.callbacks import Callback, StepContext
from metasd_pyg.training.losses import entity_cross_entropy, tail_logits
from metasd_pyg.training.objective import StudentLoss
from metasd_pyg.training.optim import OptimizerName
from metasd_pyg.training.views import compact_view, leaf_copies, student_weights

if TYPE_CHECKING:
    from metasd_pyg.training.trainer import Trainer

#: Meta-gradient paths.
MetaPath = Literal["official", "full"]
#: Meta-gradient paths accepted by :func:`meta_gradient` and :class:`MetaStep`.
META_PATHS: tuple[str, ...] = typing.get_args(MetaPath)
#: Offset of the quiz slice's seed from the run's seed (the slice is drawn
#: once, independently of the training stream's shuffling).
QUIZ_SEED_OFFSET = 7919


@dataclass(frozen=True)
class MetaConfig(Section):
    r"""The meta step (:class:`MetaStep`).

    Args:
        enabled: Run the one-step meta update (flag ``--meta`` / ``--no-meta``).
            Off by default: on Kinship, Nations, UMLS, FB15k-237 and WN18RR it
            changed the student's valid MRR by less than the spread of seeds
            and cost 18-40% more time (``docs/training.md``, "Defaults and
            why"); ``--meta`` or ``--preset paper`` turns it on.
        every: Run the meta step every this many steps.
        lr: Learning rate of the teacher's meta optimiser.
        optimizer: Optimiser of the meta update (adagrad or adam).
        virtual_lr: Step size alpha of the virtual student.
        path: official (through soft targets only) or full.
        quiz_fraction: Share of the training triples held out of the training
            stream as the quiz slice (only when the meta step runs).
        quiz_batch_size: Rows per quiz batch.
        batch_size: Rows of each training batch used by the virtual step (the
            meta step's cost scales with it, not with batch_size).
    """

    enabled: bool = option(False, key="meta")
    every: int = option(4, key="meta_every")
    lr: float = option(1e-4, key="meta_lr")
    optimizer: OptimizerName = option("adagrad", key="meta_optimizer")
    virtual_lr: float = 0.1
    path: MetaPath = option("official", key="meta_path")
    quiz_fraction: float = 0.02
    quiz_batch_size: int = 256
    batch_size: int = option(256, key="meta_batch_size")

    def validate(self) -> None:
        check(self.every >= 1, f"meta_every={self.every}: must be >= 1")
        check(self.lr >= 0, f"meta_lr={self.lr}: must be >= 0 (0: meta-gradients computed, "
              "never applied)")
        check(self.virtual_lr > 0, f"virtual_lr={self.virtual_lr}: must be > 0")
        check(0.0 < self.quiz_fraction < 1.0,
              f"quiz_fraction={self.quiz_fraction}: must be in (0, 1)")
        check(self.quiz_batch_size >= 1, f"quiz_batch_size={self.quiz_batch_size}: must be >= 1")
        check(self.batch_size >= 1, f"meta_batch_size={self.batch_size}: must be >= 1")


def meta_gradient(
    model: KGEModel,
    batch: Tensor,
    quiz_batch: Tensor,
    masks: Mapping[str, Tensor],
    *,
    path: str = "official",
    virtual_lr: float = 0.1,
    student: StudentLoss = StudentLoss(),
    candidates: Tensor | None = None,
    target: Tensor | None = None,
    quiz_candidates: Tensor | None = None,
    quiz_target: Tensor | None = None,
    teacher_logits: Tensor | None = None,
    student_leaves: dict[str, Tensor] | None = None,
    student_logits: Tensor | None = None,
    retain_graph: bool = False,
    units: Tensor | None = None,
    weights: Mapping[str, Tensor] | None = None,
) -> tuple[dict[str, Tensor], Tensor]:
    r"""Meta-gradient of the quiz loss of the one-step virtual student w.r.t. the teacher.

    See the module docstring for the math of both paths. Forwards already
    computed by the trainer can be passed in (``teacher_logits`` from the
    model's parameters, ``student_logits`` from ``student_weights(student_leaves,
    masks)``) so the meta step adds no forward on the training batch.

    Args:
        model: The PyG KGE model (its parameters are :math:`\theta`).
        batch: ``[B, 3]`` training rows (reciprocal stream).
        quiz_batch: ``[Q, 3]`` rows of the held-out quiz slice.
        masks: Parameter name -> bool mask (the student).
        path: ``"official"`` or ``"full"``.
        virtual_lr: :math:`\alpha` of the virtual step.
        student: The student's loss (:class:`~metasd_pyg.training.objective.StudentLoss`,
            the same terms and weights as the student's real step).
        candidates: Shared candidates ``[C]`` of the batch (sampled loss) or ``None``.
        target: ``[B]`` answer column in the logits (default: ``batch[:, 2]``).
        quiz_candidates: Shared candidates of the quiz batch or ``None``.
        quiz_target: ``[Q]`` answer column of the quiz logits (default ``quiz_batch[:, 2]``).
        teacher_logits: Precomputed teacher logits on ``batch`` (graph kept; for
            TransE/RotatE computed with ``twice_differentiable=True``).
        student_leaves: Leaf tensors :math:`\phi` (detached copies of the parameters).
        student_logits: Precomputed student logits from ``student_leaves``.
        units: Columns the student's logits use
            (:func:`~metasd_pyg.training.views.active_units`; ``None`` = all).
            The logits are the same either way; fewer columns are cheaper.
        retain_graph: Keep the graph of the forwards (the trainer still
            needs it for the mutual step's backward pass).
        weights: The teacher's tables :math:`\theta` by name, overriding the
            model's parameters (the row-wise engine's gathered rows, with ids
            of ``batch``, ``quiz_batch`` and the candidates into them); the
            meta-gradient is w.r.t. these tensors.

    Returns:
        ``(grads, quiz_loss)``: gradient per parameter name (zeros where the
        quiz loss does not depend on it) and the detached quiz loss.
    """
    if path not in META_PATHS:
        known = ", ".join(META_PATHS)
        raise ConfigError(f"unknown meta path {path!r}; expected one of {known}")
    params: dict[str, Tensor] = {**dict(model.named_parameters()), **(weights or {})}
    if target is None:
        target = batch[:, 2]
    if quiz_target is None:
        quiz_target = quiz_batch[:, 2]
    if teacher_logits is None:
        teacher_logits = tail_logits(model, batch, weights, candidates,
                                     twice_differentiable=True)
    if student_leaves is None:
        student_leaves = leaf_copies(params)
        student_logits = None
    view = student_weights(student_leaves, masks)
    if student_logits is None:
        student_logits = student.logits(model, batch, compact_view(view, masks, units),
                                        candidates, twice_differentiable=True)

    # 1. virtual student phi' = phi - alpha * grad_phi L_v(phi, theta), graph kept:
    #    L_v is the student's real loss L_S (StudentLoss): grad_phi L_v = J_S^T G + grad_phi aux,
    #    G in closed form (StudentLoss.logit_grad).
    names = list(student_leaves)
    leaves = [student_leaves[n] for n in names]
    g_logits = student.logit_grad(teacher_logits, student_logits, target,
                                  detach_student=(path == "official"))
    outputs = [student_logits]
    grad_outputs = [g_logits]
    if (student.regularizer != "none" and student.regularizer_weight > 0) \
            or student.relation_weight > 0:
        outputs.append(student.weight * student.aux(model, batch, view))
        grad_outputs.append(torch.ones_like(outputs[-1]))
    grads_v = torch.autograd.grad(outputs, leaves, grad_outputs=grad_outputs, create_graph=True,
                                  allow_unused=True)
    virtual = {
        n: leaf if g is None else leaf - virtual_lr * g
        for n, leaf, g in zip(names, leaves, grads_v)
    }

    # 2. quiz loss of the (masked) virtual student on the held-out quiz batch.
    quiz_view = compact_view(student_weights(virtual, masks), masks, units)
    quiz_logits = student.logits(model, quiz_batch, quiz_view, quiz_candidates,
                                 twice_differentiable=True)
    lq = entity_cross_entropy(quiz_logits, quiz_target)

    # 3. meta-gradient through step 1: theta only (official) or theta and phi (full).
    teacher_names = [n for n in names if n in params]
    inputs = [params[n] for n in teacher_names]
    if path == "full":
        inputs = inputs + [student_leaves[n] for n in teacher_names]
    grads = torch.autograd.grad(lq, inputs, retain_graph=retain_graph, allow_unused=True)
    out: dict[str, Tensor] = {}
    k = len(teacher_names)
    for i, n in enumerate(teacher_names):
        g = grads[i]
        total = torch.zeros_like(params[n]) if g is None else g
        if path == "full" and grads[k + i] is not None:
            total = total + grads[k + i]
        out[n] = total.detach()
    return out, lq.detach()


def sample_quiz(
    quiz_triples: Tensor, size: int, generator: torch.Generator
) -> Tensor:
    """``size`` rows of ``quiz_triples`` drawn uniformly without replacement.

    Args:
        quiz_triples: ``[N_q, 3]`` held-out rows (reciprocal form).
        size: Quiz batch size (all rows if larger than ``N_q``).
        generator: Random generator (its device is where the indices are drawn).
    """
    n = quiz_triples.size(0)
    if size >= n:
        return quiz_triples
    idx = torch.randperm(n, generator=generator, device=generator.device)[:size]
    return quiz_triples[idx.to(quiz_triples.device)]


class MetaStep(Callback):
    r"""The meta step as a trainer part: every ``every`` steps, meta-update the teacher.

    It holds a slice of the training triples out of the training stream (the
    quiz slice, :meth:`held_out`). On a due step it draws a quiz batch from
    that slice, computes :func:`meta_gradient` with its own
    twice-differentiable forwards on the first ``batch_size`` rows of the
    step's batch (the virtual step uses the loss terms of the trainer's
    objective, :meth:`~metasd_pyg.training.objective.MutualObjective.virtual_loss`),
    and queues a step of its own optimiser (``lr``) on the teacher's parameters.

    Build it from its section (:meth:`from_config`) or with keywords (the
    fields of :class:`MetaConfig`); :attr:`config` is the section it runs with.

    Args:
        config: The meta section (``None``: the defaults, updated by ``options``).
        **options: :class:`MetaConfig` fields by name (``every=2, path="full"``);
            an unknown name raises :class:`~metasd_pyg.errors.ConfigError`.
    """

    name = "meta"

    def __init__(self, config: MetaConfig | None = None, **options: Any) -> None:
        base = config if config is not None else MetaConfig()
        fields = {o.name for o in MetaConfig.options()}
        unknown = sorted(set(options) - fields)
        if unknown:
            raise ConfigError(f"MetaStep: unknown option(s) {', '.join(unknown)}; expected "
                              f"{', '.join(sorted(fields))}")
        self._config = base.replace(enabled=True, **options)
        self.optimizer: torch.optim.Optimizer | None = None
        #: Draws the quiz batches (and their negatives): the meta step's own random
        #: state, so that it never shifts the training stream's shuffling.
        self.generator: torch.Generator | None = None

    @classmethod
    def from_config(cls, config: MetaConfig) -> MetaStep:
        """The meta step of a :class:`MetaConfig` section.

        Args:
            config: The section.
        """
        return cls(config)

    @property
    def config(self) -> MetaConfig:
        """The section the meta step runs with."""
        return self._config

    def sections(self) -> tuple[Section, ...]:
        return (self._config,)

    @property
    def every(self) -> int:
        """Run every this many steps."""
        return self._config.every

    @property
    def path(self) -> str:
        """The meta-gradient path."""
        return self._config.path

    def due(self, step: int) -> bool:
        """Whether the meta step runs at global step ``step``."""
        return step % self._config.every == 0

    def held_out(self, train: Tensor, seed: int) -> Tensor:
        """Sorted indices of the rows of ``train`` held out as the quiz slice.

        Args:
            train: ``[N, 3]`` training triples.
            seed: The run's seed.
        """
        n = train.size(0)
        n_quiz = max(1, round(self._config.quiz_fraction * n))
        if n_quiz >= n:
            raise ConfigError(f"quiz_fraction={self._config.quiz_fraction} leaves no training "
                              "triples")
        gen = torch.Generator().manual_seed(seed + QUIZ_SEED_OFFSET)
        return torch.randperm(n, generator=gen)[:n_quiz].sort().values

    def on_fit_start(self, trainer: Trainer) -> None:
        """Create the teacher's meta optimiser (its own state and learning rate)."""
        from metasd_pyg.training.optim import make_optimizer

        if not hasattr(trainer.objective, "student_loss"):
            raise ConfigError("the meta step needs a teacher and a student: use it with "
                              "MutualObjective (mode metasd)")
        if self.optimizer is None:
            self.optimizer = make_optimizer(self._config.optimizer, trainer.model.parameters(),
                                            self._config.lr, sparse=trainer.engine.sparse)
        if self.generator is None:
            seed = trainer.config.trainer.seed + QUIZ_SEED_OFFSET + 1
            self.generator = torch.Generator().manual_seed(seed)

    def on_step(self, trainer: Trainer, ctx: StepContext) -> None:
        """Compute the meta-gradient on a slice of the step's batch and queue the teacher update."""
        if not self.due(ctx.step) or trainer.masks is None:
            return
        assert self.optimizer is not None
        assert self.generator is not None
        cfg = self._config
        quiz = sample_quiz(trainer.quiz_triples, cfg.quiz_batch_size, self.generator)
        quiz_cand: Tensor | None = None
        quiz_target: Tensor | None = None
        if ctx.candidates is not None:
            quiz_cand, quiz_target = trainer.objective.candidates(
                quiz, trainer.graph.num_entities, self.generator)
        m = cfg.batch_size
        # the tables of the batch slice, the quiz batch and their candidates
        # (the gathered rows with the row-wise engine, whole tables otherwise)
        view, quiz_view = trainer.engine.view(trainer, [ctx.batch[:m], quiz],
                                              [ctx.candidates, quiz_cand],
                                              [ctx.target[:m], quiz_target])
        assert view.masks is not None
        grads, lq = meta_gradient(
            trainer.model, view.batch, quiz_view.batch, view.masks,
            path=cfg.path, virtual_lr=cfg.virtual_lr,
            student=trainer.objective.student_loss(),  # type: ignore[attr-defined]
            candidates=view.candidates, target=view.target,
            quiz_candidates=quiz_view.candidates, quiz_target=quiz_view.target,
            units=view.units,
            weights=view.weights,
        )
        ctx.add_update(self.optimizer,
                       view.parameter_grads(grads, dict(trainer.model.named_parameters())))
        ctx.logs["quiz_loss"] = float(lq)

    def state_dict(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The meta optimiser's and the quiz generator's state (tensors), hyper-parameters."""
        from metasd_pyg.training.optim import optimizer_state

        if self.optimizer is None:
            return {}, {}
        tensors, state = optimizer_state(self.optimizer)
        if self.generator is not None:
            tensors = {**tensors, "generator": self.generator.get_state()}
        return tensors, state

    def load_state_dict(self, tensors: dict[str, Tensor], state: dict[str, Any]) -> None:
        """Restore the meta optimiser's state and the quiz generator's."""
        from metasd_pyg.training.optim import load_optimizer_state

        tensors = dict(tensors)
        gen = tensors.pop("generator", None)
        if gen is not None and self.generator is not None:
            self.generator.set_state(gen.cpu())
        if self.optimizer is not None and state:
            load_optimizer_state(self.optimizer, tensors, state)
