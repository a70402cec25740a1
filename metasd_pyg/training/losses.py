r"""Training losses of MetaSD: 1-N cross-entropy, regularisers, relation prediction, distillation.

Paper: Li, Liu, Yang, Li, "Self-Distillation with Meta Learning for Knowledge
Graph Completion", Findings of EMNLP 2022,
https://aclanthology.org/2022.findings-emnlp.149/.

All losses score through :mod:`metasd_pyg.models.scoring`, so every one of
them accepts ``weights`` (parameter name -> tensor): the pruned student is the
model scored with masked tables, the virtual student of the meta step the
model scored with its one-step-updated tables. No second model copy exists.

Batches are ``LongTensor [B, 3]`` rows ``(h, r, t)`` of the *reciprocal*
stream (see :func:`reciprocal_triples`): every row is a tail query
``(h, r, ?)`` whose answer is ``t``; head queries are the rows with
``r >= R``.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn.kge import KGEModel

from metasd_pyg.errors import ConfigError
from metasd_pyg.models.adapters import ADAPTERS, ModelAdapter, adapter_of, parameter
from metasd_pyg.models.scoring import (
    Weights,
    score_relations,
    score_tails,
)

#: Regularisers of :func:`regularizer`.
RegularizerName = Literal["dura", "n3", "none"]
#: Regulariser names accepted by :func:`regularizer`.
REGULARIZERS: tuple[str, ...] = typing.get_args(RegularizerName)


def reciprocal_triples(triples: Tensor, num_relations: int) -> Tensor:
    r"""Append the inverse of every triple: ``(h, r, t)`` and ``(t, r + R, h)``.

    Lacroix et al. 2018 (https://arxiv.org/abs/1806.07297): with reciprocal
    relations every query becomes a tail query, head prediction
    ``(?, r, t)`` being ``(t, r + R, ?)``.

    Args:
        triples: ``[N, 3]`` triples (head, relation, tail).
        num_relations: ``R``, number of relations without inverses.

    Returns:
        ``[2N, 3]``: the original rows followed by their inverses.
    """
    inv = torch.stack([triples[:, 2], triples[:, 1] + num_relations, triples[:, 0]], dim=1)
    return torch.cat([triples, inv], dim=0)


def tail_logits(
    model: KGEModel,
    batch: Tensor,
    weights: Weights | None = None,
    candidates: Tensor | None = None,
    *,
    twice_differentiable: bool = False,
) -> Tensor:
    """Scores ``[B, E]`` (or ``[B, C]`` for ``candidates``) of the tail queries of ``batch``.

    Args:
        model: A PyG KGE model.
        batch: ``[B, 3]`` rows ``(h, r, t)``.
        weights: Optional parameter overrides (masked or virtual student).
        candidates: Optional 1-D ``[C]`` entity ids shared by the batch.
        twice_differentiable: For TransE/RotatE, compute distances by
            broadcasting (memory ``B x C x D``) instead of :func:`torch.cdist`,
            whose backward has no derivative: needed by the meta step's
            second-order gradient
            (:meth:`~metasd_pyg.models.adapters.ModelAdapter.twice_differentiable_score`).
            Bilinear models ignore it.
    """
    if not twice_differentiable:
        return score_tails(model, batch[:, 0], batch[:, 1], weights=weights,
                           candidates=candidates)
    adapter = adapter_of(model)
    query = adapter.tail_query(model, batch[:, 0], batch[:, 1], weights)
    cand = adapter.entity_matrix(model, weights, candidates)
    return adapter.twice_differentiable_score(model, query, cand)


def entity_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    r"""1-N cross-entropy :math:`-\frac1B\sum_i \log \mathrm{softmax}(s_i)_{t_i}`.

    Args:
        logits: ``[B, C]`` scores over all entities (or candidates).
        target: ``[B]`` column of the true answer of each row.
    """
    return F.cross_entropy(logits, target)


#: Probabilities below this are recomputed from the logits for the loss's value
#: (``-log p`` of a subnormal or zero ``p`` loses digits or is infinite).
_TINY = 1e-30


class _FusedCrossEntropy(torch.autograd.Function):
    """Cross-entropy whose gradient is written in the forward pass (:func:`fused_cross_entropy`)."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, target: Tensor) -> Tensor:
        n = logits.size(0)
        rows = torch.arange(n, device=logits.device)
        z = logits.detach()
        grad = torch.softmax(z, dim=-1)
        p = grad[rows, target]
        # -log softmax(z)_t from the probability where it is a normal float; rows whose
        # probability underflows (z_t more than ~69 below the log-sum-exp) from the logits
        row_loss = p.log().neg_()
        small = p < _TINY
        if bool(small.any()):
            zs = z[small]
            row_loss[small] = torch.logsumexp(zs, dim=-1) - zs.gather(1, target[small, None])[:, 0]
        # d CE / d logits = (softmax - one-hot) / B, in place of the probabilities
        grad[rows, target] -= 1.0
        grad.div_(n)
        ctx.save_for_backward(grad)
        return row_loss.sum() / n

    @staticmethod
    def backward(ctx: Any, out_grad: Tensor) -> tuple[Tensor | None, None]:
        (grad,) = ctx.saved_tensors
        return _scaled(grad, out_grad), None


def _scaled(grad: Tensor, out_grad: Tensor) -> Tensor:
    """``grad * out_grad``, or ``grad`` itself when ``out_grad`` is exactly one (no pass over it).

    The saved gradient is handed on without a copy: autograd passes it to the
    logits' backward (a matrix product), which only reads it.
    """
    if out_grad.numel() == 1 and float(out_grad) == 1.0:
        return grad
    return grad * out_grad


def fused_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    r""":func:`entity_cross_entropy` with its gradient computed in the forward pass.

    Same value and gradient as :func:`torch.nn.functional.cross_entropy`
    (tested), in two passes over the ``[B, C]`` logits (torch's fused softmax, then
    :math:`\partial/\partial s = (\mathrm{softmax}(s) - e_t)/B` in place; the loss
    is :math:`-\log` of the target's probability, from the logits where that
    probability underflows; nothing more in the backward pass when the incoming
    gradient is one) instead of torch's seven (log-softmax, a zero-filled
    ``[B, C]`` gradient, the log-softmax backward). The training objectives use it; it is not twice
    differentiable, so the meta step keeps :func:`entity_cross_entropy`.

    Args:
        logits: ``[B, C]`` scores.
        target: ``[B]`` column of the true answer of each row.
    """
    if not (torch.is_grad_enabled() and logits.requires_grad):
        return entity_cross_entropy(logits, target)
    out: Tensor = _FusedCrossEntropy.apply(logits, target)
    return out


def sample_candidates(
    batch: Tensor, num_entities: int, num_negatives: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    r"""Shared candidate set of a batch: its true tails plus uniform negatives.

    For large graphs the 1-N softmax over all ``E`` entities is replaced by a
    softmax over ``C = |unique(tails of the batch) \cup negatives|`` shared
    candidates (in-batch positives of the other rows act as extra negatives).
    Candidates are deduplicated, so no entity appears twice in a row.

    Args:
        batch: ``[B, 3]`` rows.
        num_entities: ``E``.
        num_negatives: Number of uniformly drawn negatives (with replacement).
        generator: Random generator (for reproducible runs).

    Returns:
        ``(candidates [C], target [B])``: candidate ids and the column of each
        row's true tail.
    """
    # Drawn where the generator lives (CPU by default), then moved: device-agnostic.
    gen_device = generator.device if generator is not None else batch.device
    neg = torch.randint(num_entities, (num_negatives,), generator=generator, device=gen_device)
    neg = neg.to(batch.device)
    cand, inverse = torch.unique(torch.cat([batch[:, 2], neg]), return_inverse=True)
    return cand, inverse[: batch.size(0)]


def sampled_cross_entropy(
    model: KGEModel,
    batch: Tensor,
    candidates: Tensor,
    target: Tensor,
    weights: Weights | None = None,
) -> Tensor:
    """Cross-entropy over shared ``candidates`` (see :func:`sample_candidates`).

    Args:
        model: A PyG KGE model.
        batch: ``[B, 3]`` rows.
        candidates: ``[C]`` shared candidate ids.
        target: ``[B]`` column of each row's tail in ``candidates``.
        weights: Optional parameter overrides.
    """
    return F.cross_entropy(tail_logits(model, batch, weights, candidates), target)


def relation_cross_entropy(
    model: KGEModel, batch: Tensor, weights: Weights | None = None
) -> Tensor:
    r"""Relation-prediction auxiliary loss: cross-entropy of ``(h, ?, t)`` over relation rows.

    Chen et al. 2021, "Relation Prediction as an Auxiliary Training Objective"
    (https://arxiv.org/abs/2110.02834). With a reciprocal model the target of
    an inverse row ``(t, r + R, h)`` is ``r + R``.

    Args:
        model: A PyG KGE model.
        batch: ``[B, 3]`` rows.
        weights: Optional parameter overrides.
    """
    logits = score_relations(model, batch[:, 0], batch[:, 2], weights=weights)
    return F.cross_entropy(logits, batch[:, 1])


def dura(model: KGEModel, batch: Tensor, weight: float, weights: Weights | None = None) -> Tensor:
    r"""DURA regulariser (Zhang, Cai, Zhang, Wang, NeurIPS 2020, https://arxiv.org/abs/2011.05816).

    For bilinear models the DURA penalty of a triple is
    :math:`\|\bar h \circ r\|^2 + \|t\|^2 + \|t \circ \bar r\|^2 + \|h\|^2`; for
    ComplEx the products are complex and their moduli factorise per dimension,
    :math:`|h_i r_i|^2 = |h_i|^2 |r_i|^2`. As in the weighted form of the
    authors' code (also used by the MetaSD code),

    .. math::
        \Omega = \frac{\lambda}{B}\sum_{i,k} \tfrac12(|h_{ik}|^2 + |t_{ik}|^2)
                 + \tfrac32(|h_{ik}|^2 |r_{ik}|^2 + |t_{ik}|^2 |r_{ik}|^2).

    Squared moduli are sums of squares of the tables' coordinates (``re^2 + im^2``,
    never through a square root), so the gradient is finite, and zero, at pruned
    (exactly zero) coordinates. It is written in closed form,

    .. math::
        \frac{\partial\Omega}{\partial h_{ik}} = \frac{\lambda}{B}(1 + 3|r_{ik}|^2)\,h_{ik},
        \qquad
        \frac{\partial\Omega}{\partial r_{ik}} = \frac{3\lambda}{B}(|h_{ik}|^2 + |t_{ik}|^2)\,r_{ik}

    (per real coordinate of each table; the tails' like the heads'), one
    accumulation per table instead of autograd's pass per gathered row set
    (:class:`_Dura`). Under ``create_graph=True`` (the meta step's virtual
    step) the gradient is the autograd composition's, so it differentiates again.

    Args:
        model: ComplEx or DistMult (DURA is defined for bilinear models).
        batch: ``[B, 3]`` rows whose embeddings are penalised.
        weight: :math:`\lambda`.
        weights: Optional parameter overrides (the masked student).
    """
    adapter = _dura_adapter(model)
    ent = [parameter(model, weights, n) for n in adapter.entity_tables]
    rel = [parameter(model, weights, n) for n in adapter.relation_tables]
    names = (*adapter.entity_tables, *adapter.relation_tables)
    out: Tensor = _Dura.apply(model, names, weight / batch.size(0), len(ent), batch, *ent, *rel)
    return out


def _dura_adapter(model: KGEModel) -> ModelAdapter:
    """The model's adapter, or a :class:`ConfigError` if DURA does not apply to it."""
    adapter = adapter_of(model)
    if not adapter.supports_dura:
        dura_models = "/".join(a.name for a in ADAPTERS if a.supports_dura)
        raise ConfigError(
            f"regulariser 'dura' applies to {dura_models}, not {type(model).__name__}; "
            "use regularizer='n3' or 'none'"
        )
    return adapter


def _dura_composition(model: KGEModel, batch: Tensor, scale: float,
                      weights: Weights | None) -> Tensor:
    """DURA as the autograd composition of the adapter's squared moduli (the closed form's
    reference, and its gradient under ``create_graph``)."""
    h2, r2, t2 = adapter_of(model).squared_moduli(model, batch, weights)
    assert r2 is not None
    s = h2 + t2
    return scale * (0.5 * s.sum() + 1.5 * (r2 * s).sum())


class _Dura(torch.autograd.Function):
    """DURA with its closed-form gradient (:func:`dura`)."""

    @staticmethod
    def forward(ctx: Any, model: KGEModel, names: tuple[str, ...], scale: float, n_ent: int,
                batch: Tensor, *tables: Tensor) -> Tensor:
        head, rel, tail = batch[:, 0], batch[:, 1], batch[:, 2]
        ids = torch.cat([head, tail])
        ent = [t.index_select(0, ids) for t in tables[:n_ent]]  # [2B, d]: heads, then tails
        rows_r = [t.index_select(0, rel) for t in tables[n_ent:]]
        ht2 = ent[0].square()
        for x in ent[1:]:
            ht2.addcmul_(x, x)
        r2 = rows_r[0].square()
        for x in rows_r[1:]:
            r2.addcmul_(x, x)
        b = head.size(0)
        s = ht2[:b] + ht2[b:]
        value = (0.5 * s.sum() + 1.5 * torch.dot(r2.view(-1), s.view(-1))) * scale
        ctx.model, ctx.names, ctx.scale, ctx.n_ent = model, names, scale, n_ent
        ctx.save_for_backward(batch, *tables)
        ctx.rows = ent, rows_r, r2, s  # the fast backward's (read only, so it may run twice)
        return value

    @staticmethod
    def backward(ctx: Any, out_grad: Tensor) -> tuple[Tensor | None, ...]:
        batch, *tables = ctx.saved_tensors
        head, rel, tail = batch[:, 0], batch[:, 1], batch[:, 2]
        n_ent = ctx.n_ent
        needs = ctx.needs_input_grad[5:]
        if torch.is_grad_enabled():  # create_graph=True: differentiate the composition
            with torch.enable_grad():
                value = _dura_composition(ctx.model, batch, ctx.scale,
                                          dict(zip(ctx.names, tables)))
                wrt = [t for t, n in zip(tables, needs) if n]
                got = iter(torch.autograd.grad(value, wrt, out_grad, create_graph=True))
            return (None,) * 5 + tuple(next(got) if n else None for n in needs)
        ent, rows_r, r2, s = ctx.rows
        c = out_grad * ctx.scale  # a 0-d tensor: no synchronisation with the device
        ids = torch.cat([head, tail])
        # dOmega/dx = c (1 + 3 r2) x for a head or tail coordinate x
        a = (r2 * (3.0 * c)).add_(c).repeat(2, 1)
        # dOmega/dy = 3c (h2 + t2) y for a relation coordinate y
        s3 = s * (3.0 * c)
        grads: list[Tensor | None] = []
        for i, (table, need) in enumerate(zip(tables, needs)):
            if not need:
                grads.append(None)
                continue
            if i < n_ent:
                g = table.new_zeros(table.shape).index_add_(0, ids, ent[i] * a)
            else:
                g = table.new_zeros(table.shape).index_add_(0, rel, rows_r[i - n_ent] * s3)
            grads.append(g)
        return (None,) * 5 + tuple(grads)


def n3(model: KGEModel, batch: Tensor, weight: float, weights: Weights | None = None) -> Tensor:
    r"""N3 regulariser (Lacroix, Usunier, Obozinski, ICML 2018, https://arxiv.org/abs/1806.07297).

    .. math::
        \Omega = \frac{\lambda}{B}\sum_{i,k} |h_{ik}|^3 + |r_{ik}|^3 + |t_{ik}|^3

    with :math:`|x|` the modulus of a complex coordinate for ComplEx/RotatE
    (the absolute value otherwise; RotatE's unit-modulus relations are not
    penalised). :math:`|x|^3` is computed as :math:`(|x|^2)^{3/2}`, whose
    gradient :math:`3|x| x` is finite (zero) at exact zeros, where
    :math:`\sqrt{re^2 + im^2}` alone would give ``0 * inf = nan``.

    Args:
        model: Any supported PyG KGE model.
        batch: ``[B, 3]`` rows whose embeddings are penalised.
        weight: :math:`\lambda`.
        weights: Optional parameter overrides (the masked student).
    """
    h2, r2, t2 = adapter_of(model).squared_moduli(model, batch, weights)
    total = h2.pow(1.5).sum() + t2.pow(1.5).sum()
    if r2 is not None:
        total = total + r2.pow(1.5).sum()
    return weight * total / batch.size(0)


def regularizer(
    name: str, model: KGEModel, batch: Tensor, weight: float, weights: Weights | None = None
) -> Tensor:
    """Regulariser by name (one of :data:`REGULARIZERS`); ``"none"`` gives a zero tensor.

    Args:
        name: ``"dura"``, ``"n3"`` or ``"none"``.
        model: A PyG KGE model.
        batch: ``[B, 3]`` rows.
        weight: Regularisation weight.
        weights: Optional parameter overrides.
    """
    if name not in REGULARIZERS:
        raise ConfigError(
            f"unknown regularizer {name!r}; expected one of {', '.join(REGULARIZERS)}")
    if name == "dura":
        _dura_adapter(model)  # refused for a model DURA does not apply to, whatever the weight
    if name == "none" or weight == 0.0:  # nothing computed: a zero penalty has no gradient
        return batch.new_zeros((), dtype=model.node_emb.weight.dtype)
    return dura(model, batch, weight, weights) if name == "dura" else n3(model, batch, weight,
                                                                         weights)


def kl_divergence(p_logits: Tensor, q_logits: Tensor, temperature: float = 1.0) -> Tensor:
    r"""Mean over rows of :math:`\mathrm{KL}(p \| q)` with :math:`p = \mathrm{softmax}(a/\tau)`.

    Args:
        p_logits: ``[B, C]`` logits of :math:`p`.
        q_logits: ``[B, C]`` logits of :math:`q`.
        temperature: :math:`\tau`.
    """
    log_p = F.log_softmax(p_logits / temperature, dim=-1)
    log_q = F.log_softmax(q_logits / temperature, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean()


@dataclass(frozen=True)
class KLWeights:
    r"""Weights of the two-way temperature KL of :func:`distillation_loss`.

    :math:`w_f\,\mathrm{KL}(p_a\|p_b) + w_r\,\mathrm{KL}(p_b\|p_a)`, where
    ``a`` is the model being trained in the mutual step (``b`` the other
    model's detached logits) and the teacher in the meta step's virtual step
    (``b`` the student). The official code's values are 3 and 1.

    Args:
        forward: :math:`w_f`, weight of :math:`\mathrm{KL}(p_a\|p_b)`
            (flag ``--distill-weight-ts``).
        reverse: :math:`w_r`, weight of :math:`\mathrm{KL}(p_b\|p_a)`
            (flag ``--distill-weight-st``).
    """

    forward: float = 3.0
    reverse: float = 1.0


@dataclass(frozen=True)
class MutualWeights:
    r"""Weights of the fused mutual loss (:func:`mutual_logit_loss`).

    Args:
        temperature: Distillation temperature :math:`	au`.
        kl: The two-way KL weights of :math:`D`.
        teacher_scale: :math:`\lambda_T`, scale of the teacher's distillation term.
        student_scale: :math:`\lambda_S`, scale of the student's distillation term.
        teacher_weight: :math:`a_T`, weight of the teacher's whole loss.
        student_weight: :math:`a_S`, weight of the student's whole loss.
        student_logit_scale: :math:`\gamma > 0`: the student's terms are those of
            the logits :math:`\gamma z_S` (``StudentLoss.logits``), applied inside
            the fused loss (no pass over the ``[B, C]`` table of its own).
    """

    temperature: float = 3.0
    kl: KLWeights = KLWeights()
    teacher_scale: float = 1.0
    student_scale: float = 1.0
    teacher_weight: float = 1.0
    student_weight: float = 1.0
    student_logit_scale: float = 1.0


def distillation_loss(
    a_logits: Tensor,
    b_logits: Tensor,
    temperature: float = 3.0,
    weights: KLWeights = KLWeights(),
) -> Tensor:
    r"""Two-way temperature KL of the MetaSD code.

    .. math::
        L(a, b) = w_{ab}\,\mathrm{KL}(p_a \| p_b) + w_{ba}\,\mathrm{KL}(p_b \| p_a),
        \qquad p_x = \mathrm{softmax}(x / \tau).

    Defaults are the official code's (:math:`w_{ab} = 3, w_{ba} = 1, \tau = 3`,
    no :math:`\tau^2` factor). Conventions in :mod:`metasd_pyg.training`: in
    the mutual step ``a`` is the model being trained and ``b`` the other
    model's detached logits; in the virtual step of the meta update ``a`` is
    the teacher and ``b`` the student, i.e.
    :math:`3\,\mathrm{KL}(T \| S) + \mathrm{KL}(S \| T)`, both with gradients.

    Args:
        a_logits: ``[B, C]`` logits of the first distribution.
        b_logits: ``[B, C]`` logits of the second distribution.
        temperature: Softmax temperature :math:`\tau`.
        weights: :math:`w_{ab}` (``forward``) and :math:`w_{ba}` (``reverse``).
    """
    weight_ab, weight_ba = weights.forward, weights.reverse
    log_a = F.log_softmax(a_logits / temperature, dim=-1)
    log_b = F.log_softmax(b_logits / temperature, dim=-1)
    diff = log_a - log_b
    out = a_logits.new_zeros(())
    if weight_ab:
        out = out + weight_ab * (log_a.exp() * diff).sum(-1).mean()
    if weight_ba:
        out = out + weight_ba * (log_b.exp() * (-diff)).sum(-1).mean()
    return out


#: Elements of the ``[rows, C]`` logit block the fused mutual loss processes at
#: a time on CPU: its handful of temporaries then stay in cache instead of
#: streaming ten full ``B x C`` tables through memory.
CPU_BLOCK_ELEMENTS = 1 << 17


#: Largest integer temperature whose temperature-1 softmax is taken as a power
#: of the temperature-``tau`` one (``tau - 1`` multiplications instead of an
#: exponential; above this the products cost about as much as ``exp``).
MAX_POWER_TEMPERATURE = 4


def _softmaxes(
    z: Tensor, rows: Tensor, target: Tensor, tau: float, p1: Tensor, scale: float,
    gamma: float = 1.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """``scale`` x softmax at temperature 1 (into ``p1``), log-softmax and softmax at ``tau``, CE.

    All of the logits ``gamma * z`` (``gamma > 0``): the factor joins the
    temperature's (``gamma / tau``), so scaled logits cost no pass of their own.
    Both softmaxes come from the max-shifted logits ``x``. At an integer
    temperature (up to :data:`MAX_POWER_TEMPERATURE`; the default is 3) only
    ``exp(x / tau)`` is an exponential and ``exp(x) = exp(x / tau) ** tau`` is
    ``tau - 1`` multiplications; otherwise each temperature has its exponential.
    The log-probabilities at temperature 1 are only needed at the targets
    ``x[rows, target]``. The softmax at temperature 1 is the start of the
    cross-entropy gradient, so it is written already scaled by the loss's
    factor (no later pass to scale the gradient).
    """
    x = z - z.amax(dim=-1, keepdim=True)
    x_target = x[rows, target]
    if gamma != 1.0:
        x_target.mul_(gamma)
    power = int(tau)
    if power == tau and 1 <= power <= MAX_POWER_TEMPERATURE:
        p_tau = x.mul_(gamma / tau).exp()
        if power == 1:
            p1.copy_(p_tau)
        else:
            torch.mul(p_tau, p_tau, out=p1)
            for _ in range(power - 2):
                p1.mul_(p_tau)
    else:
        if gamma != 1.0:
            x.mul_(gamma)
        torch.exp(x, out=p1)
        p_tau = x.mul_(1.0 / tau).exp()
    s1 = p1.sum(dim=-1, keepdim=True)
    ce = (s1.log().view(-1) - x_target).sum()
    p1.mul_(s1.reciprocal_().mul_(scale))
    s_tau = p_tau.sum(dim=-1, keepdim=True)
    p_tau.mul_(s_tau.reciprocal())
    return x.sub_(s_tau.log_()), p_tau, ce


def _mutual_block(
    z_t: Tensor, z_s: Tensor, target: Tensor, g_t: Tensor, g_s: Tensor,
    consts: tuple[float, ...], n: int,
) -> Tensor:
    r"""Unnormalised loss of a block of rows; writes its gradients (of the mean over ``n`` rows).

    For :math:`p = \mathrm{softmax}(a/\tau)`:
    :math:`\partial_a \mathrm{KL}(p\|q) = \tau^{-1} p \odot (\log p - \log q - \mathrm{KL}(p\|q))`
    and :math:`\partial_a \mathrm{KL}(q\|p) = \tau^{-1}(p - q)`. Every term is added
    into the gradients already scaled (``addcmul_``, ``add_`` with ``alpha``), so each
    ``[rows, C]`` table is read or written about twenty times for both models together.
    """
    tau, w_f, w_r, lam_t, lam_s, a_t, a_s, gamma = consts
    # d(mean over n rows)/d(row loss), times the model's weight; the student's loss is a
    # function of gamma * z_s, so its gradient w.r.t. z_s carries gamma once more
    sc_t, sc_s = a_t / n, a_s * gamma / n
    rows = torch.arange(z_t.size(0), device=z_t.device)
    log_t, p_t, ce_t = _softmaxes(z_t, rows, target, tau, g_t, sc_t)
    log_s, p_s, ce_s = _softmaxes(z_s, rows, target, tau, g_s, sc_s, gamma)
    # CE gradient: softmax - one-hot (scaled)
    g_t[rows, target] -= sc_t
    g_s[rows, target] -= sc_s
    d = log_t.sub_(log_s)  # log p_T - log p_S (in place of log p_T)
    kl_ts = torch.linalg.vecdot(p_t, d)  # KL(T||S) per row
    kl_st = torch.linalg.vecdot(p_s, d).neg_()  # KL(S||T) per row
    loss = (a_t * ce_t + a_s * ce_s
            + (a_t * lam_t * w_f + a_s * lam_s * w_r) * kl_ts.sum()
            + (a_t * lam_t * w_r + a_s * lam_s * w_f) * kl_st.sum())
    tmp = log_s  # free now: the buffer of the remaining temporaries
    # teacher: CE + lam_t [w_f KL(T||sg S) + w_r KL(sg S||T)]
    # student: CE + lam_s [w_f KL(S||sg T) + w_r KL(sg T||S)]
    c_t, c_s = sc_t * lam_t / tau, sc_s * lam_s / tau
    if c_t * w_f:
        g_t.addcmul_(p_t, torch.sub(d, kl_ts[:, None], out=tmp), value=c_t * w_f)
    if c_s * w_f:  # d(KL(S||T))/d z_S = p_S (log p_S - log p_T - KL) / tau = -p_S (d + KL) / tau
        g_s.addcmul_(p_s, torch.add(d, kl_st[:, None], out=tmp), value=-c_s * w_f)
    if (c_t or c_s) and w_r:
        diff = torch.sub(p_t, p_s, out=tmp)  # KL(sg S||T) -> (p_T - p_S)/tau; its mirror for S
        if c_t:
            g_t.add_(diff, alpha=c_t * w_r)
        if c_s:
            g_s.sub_(diff, alpha=c_s * w_r)
    return loss


class _MutualLogitLoss(torch.autograd.Function):
    """Fused mutual loss on two logit tables, analytic gradients (:func:`mutual_logit_loss`).

    The forward pass computes the loss and, block of rows by block of rows,
    its gradients (the loss is a mean over rows); the backward pass hands them
    on (:func:`_scaled`).
    """

    @staticmethod
    def forward(
        ctx: Any, z_t: Tensor, z_s: Tensor, target: Tensor, tau: float, w_f: float, w_r: float,
        lam_t: float, lam_s: float, a_t: float, a_s: float, gamma: float,
    ) -> Tensor:
        n, c = z_t.shape
        z_t, z_s = z_t.detach(), z_s.detach()
        g_t = torch.empty_like(z_t)
        g_s = torch.empty_like(z_s)
        step = n if z_t.device.type != "cpu" else max(1, CPU_BLOCK_ELEMENTS // max(c, 1))
        consts = (tau, w_f, w_r, lam_t, lam_s, a_t, a_s, gamma)
        total = z_t.new_zeros(())
        for i in range(0, n, step):
            j = min(n, i + step)
            total += _mutual_block(z_t[i:j], z_s[i:j], target[i:j], g_t[i:j], g_s[i:j], consts,
                                   n)
        ctx.save_for_backward(g_t, g_s)
        return total / n

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        g_t, g_s = ctx.saved_tensors
        return (_scaled(g_t, grad), _scaled(g_s, grad), None, None, None, None, None, None, None,
                None, None)


def mutual_logit_loss(
    z_t: Tensor,
    z_s: Tensor,
    target: Tensor,
    weights: MutualWeights = MutualWeights(),
) -> Tensor:
    r"""Mutual step's logit losses, fused: one pass over the ``[B, C]`` tables.

    Value and gradients equal those of

    .. math::
        a_T[\mathrm{CE}(z_T) + \lambda_T D(z_T, \mathrm{sg}(\gamma z_S))]
        + a_S[\mathrm{CE}(\gamma z_S) + \lambda_S D(\gamma z_S, \mathrm{sg}(z_T))]

    with :math:`D` = :func:`distillation_loss` and :math:`\gamma` the student's
    logit scale (tested against that composition), but the gradients are written in closed form: for
    :math:`p = \mathrm{softmax}(a/\tau)`,
    :math:`\partial_a \mathrm{KL}(p\|q) = \tau^{-1} p \odot (\log p - \log q - \mathrm{KL}(p\|q))`
    and :math:`\partial_a \mathrm{KL}(q\|p) = \tau^{-1}(p - q)`,
    so the step makes a handful of
    elementwise passes over the ``B x E`` logits instead of the several dozen
    of the autograd composition (these passes, not the matrix products,
    dominated the step on FB15k-237). Not twice differentiable: the meta step
    builds its own loss from the same logits.

    Args:
        z_t: ``[B, C]`` teacher logits.
        z_s: ``[B, C]`` student logits.
        target: ``[B]`` answer columns.
        weights: :math:`\tau`, the KL weights of :math:`D`, :math:`\lambda_T,
            \lambda_S, a_T, a_S, \gamma`.

    Raises:
        ValueError: :math:`\gamma \le 0`.
    """
    w = weights
    if not w.student_logit_scale > 0:
        raise ValueError(f"student_logit_scale={w.student_logit_scale}: must be > 0")
    out: Tensor = _MutualLogitLoss.apply(z_t, z_s, target, w.temperature, w.kl.forward,
                                         w.kl.reverse, w.teacher_scale, w.student_scale,
                                         w.teacher_weight, w.student_weight,
                                         w.student_logit_scale)
    return out

