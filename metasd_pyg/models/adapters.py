r"""One adapter per PyG KGE model: all that differs between ComplEx, DistMult, RotatE, TransE.

PyG's KGE models (:mod:`torch_geometric.nn.kge`) only score triples. The rest
of the library needs more of a model: its queries in the candidate space, its
candidate-side entity matrix, the squared moduli its regularisers penalise,
which of its tables are pruned. As facebookresearch/kbc's ``KBCModel``
(https://github.com/facebookresearch/kbc) and LibKGE's scorers
(https://github.com/uma-pi1/kge) do, one :class:`ModelAdapter` subclass per
model class holds all of it, and the rest of the code asks the adapter
instead of testing types:

* :class:`ComplExAdapter` (Trouillon et al. 2016, https://arxiv.org/abs/1606.06357):
  :math:`\mathrm{Re}\langle h, r, \bar t\rangle`;
* :class:`DistMultAdapter` (Yang et al. 2015, https://arxiv.org/abs/1412.6575):
  :math:`\langle h, r, t\rangle`;
* :class:`RotatEAdapter` (Sun et al. 2019, https://arxiv.org/abs/1902.10197):
  :math:`\gamma - \lVert h \circ e^{i\theta_r} - t\rVert_2`;
* :class:`TransEAdapter` (Bordes et al. 2013,
  https://papers.nips.cc/paper/5071-translating-embeddings-for-modeling-multi-relational-data):
  :math:`-\lVert \hat h + r - \hat t\rVert_p` with :math:`\hat x = x / \lVert x\rVert_p`.

Every model scores a query :math:`q` (of :math:`(h, r, ?)` or :math:`(?, r, t)`)
against candidate rows :math:`c` of its entity matrix, either bilinearly,
:math:`s = \langle q, c\rangle` (:class:`BilinearAdapter`), or by a distance,
:math:`s = f(\lVert q - c\rVert_p)` (:class:`DistanceAdapter`). Complex models
hold a real and an imaginary table (``node_emb`` / ``node_emb_im``); their
query and candidate vectors are ``[re, im]`` concatenations.

Adapters are stateless: :func:`adapter_of` finds the one of a model instance
(by exact class, no subclass matching), :func:`adapter_for` the one of a
model name. Every method takes the model and an optional ``weights`` mapping
(parameter name -> tensor) that replaces the model's own parameters, as
:func:`torch.func.functional_call` does.

The tensor operations, and their order, are those of the type-switching code
they replace: training results reproduce to the last bit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn.kge import ComplEx, DistMult, KGEModel, RotatE, TransE

from metasd_pyg.errors import ConfigError

Weights = Mapping[str, Tensor]

#: Names of the entity tables a PyG KGE model can have (real, imaginary).
ENTITY_TABLES = ("node_emb.weight", "node_emb_im.weight")
#: Names of the relation tables a PyG KGE model can have (real, imaginary).
RELATION_TABLES = ("rel_emb.weight", "rel_emb_im.weight")


def parameter(model: nn.Module, weights: Weights | None, name: str) -> Tensor:
    """Parameter ``name`` of ``model``, or its override in ``weights`` if there is one."""
    if weights is not None and name in weights:
        return weights[name]
    return model.get_parameter(name)


def gather_rows(table: Tensor, ids: Tensor) -> Tensor:
    """Rows ``table[ids]`` (``ids`` of any shape), as an embedding lookup.

    The same values as indexing; its backward is torch's embedding backward,
    about twice as fast on the CPU as indexing's accumulating ``index_put_``
    (a step gathers a dozen such rows).
    """
    return F.embedding(ids, table)


def _bilinear(query: Tensor, cand: Tensor) -> Tensor:
    if cand.dim() == 2:
        return query @ cand.t()
    return torch.einsum("bd,bcd->bc", query, cand)


def _distance(query: Tensor, cand: Tensor, p: float) -> Tensor:
    if cand.dim() == 2:
        return torch.cdist(query, cand, p=p)
    return torch.cdist(query.unsqueeze(1), cand, p=p).squeeze(1)


def _rotation(model: KGEModel, weights: Weights | None, rel: Tensor) -> tuple[Tensor, Tensor]:
    theta = gather_rows(parameter(model, weights, "rel_emb.weight"), rel)
    return torch.cos(theta), torch.sin(theta)


def _complex_entity_matrix(
    model: KGEModel, weights: Weights | None, candidates: Tensor | None
) -> Tensor:
    """``[re, im]`` rows of the entity tables (gathered before the concatenation)."""

    def rows(name: str) -> Tensor:
        table = parameter(model, weights, name)
        return table if candidates is None else gather_rows(table, candidates)

    re = rows("node_emb.weight")
    return torch.cat([re, rows("node_emb_im.weight")], dim=-1)


def _complex_entity_moduli(
    model: KGEModel, weights: Weights | None, head: Tensor, tail: Tensor
) -> tuple[Tensor, Tensor]:
    """``re^2 + im^2`` per complex coordinate of the ``head`` and ``tail`` rows."""
    ent = parameter(model, weights, "node_emb.weight")
    ent_im = parameter(model, weights, "node_emb_im.weight")
    h_re, h_im = gather_rows(ent, head), gather_rows(ent_im, head)
    t_re, t_im = gather_rows(ent, tail), gather_rows(ent_im, tail)
    return h_re * h_re + h_im * h_im, t_re * t_re + t_im * t_im


def _real_entity_moduli(
    model: KGEModel, weights: Weights | None, head: Tensor, tail: Tensor
) -> tuple[Tensor, Tensor]:
    """``x^2`` per coordinate of the ``head`` and ``tail`` rows."""
    ent = parameter(model, weights, "node_emb.weight")
    h, t = gather_rows(ent, head), gather_rows(ent, tail)
    return h * h, t * t


class _ComplexProduct(torch.autograd.Function):
    r"""Rows ``[re, im]`` of :math:`x \circ y` (or :math:`\bar y \circ x`) for gathered
    complex rows, with the gradient in closed form.

    Inputs are the four tables (real and imaginary parts of :math:`X` and
    :math:`Y`) and the ids of the rows to multiply; one ``index_add_`` per table
    writes the backward pass, where autograd's composition would make a
    zero-filled gradient per gathered row set and a dozen elementwise passes.
    Under ``create_graph=True`` the gradient is the composition's
    (:func:`_complex_product_reference`), so it differentiates again.
    """

    @staticmethod
    def forward(ctx: Any, conj: bool, x_ids: Tensor, y_ids: Tensor, x_re: Tensor,
                x_im: Tensor, y_re: Tensor, y_im: Tensor) -> Tensor:
        a, b = x_re.index_select(0, x_ids), x_im.index_select(0, x_ids)
        c, d = y_re.index_select(0, y_ids), y_im.index_select(0, y_ids)
        sign = -1.0 if conj else 1.0  # y -> conj(y) flips d
        n = a.size(-1)
        out = a.new_empty((*a.shape[:-1], 2 * n))
        re, im = out[..., :n], out[..., n:]
        torch.mul(a, c, out=re).addcmul_(b, d, value=-sign)  # ac - (+-)bd
        torch.mul(b, c, out=im).addcmul_(a, d, value=sign)  # bc + (+-)ad
        ctx.conj, ctx.rows = conj, (a, b, c, d)
        ctx.save_for_backward(x_ids, y_ids, x_re, x_im, y_re, y_im)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x_ids, y_ids, *tables = ctx.saved_tensors
        needs = ctx.needs_input_grad[3:]
        if torch.is_grad_enabled():  # create_graph=True: differentiate the composition
            with torch.enable_grad():
                out = _complex_product_reference(ctx.conj, x_ids, y_ids, *tables)
                wrt = [t for t, n in zip(tables, needs) if n]
                got = iter(torch.autograd.grad(out, wrt, grad, create_graph=True))
            return (None,) * 3 + tuple(next(got) if n else None for n in needs)
        a, b, c, d = ctx.rows
        sign = -1.0 if ctx.conj else 1.0
        n = a.size(-1)
        g_re, g_im = grad[..., :n], grad[..., n:]
        # re = ac - s bd, im = bc + s ad (s = sign)
        parts = (
            (lambda: (g_re * c).addcmul_(g_im, d, value=sign), x_ids),   # d/da
            (lambda: (g_im * c).addcmul_(g_re, d, value=-sign), x_ids),  # d/db
            (lambda: (g_re * a).addcmul_(g_im, b), y_ids),               # d/dc
            (lambda: (g_im * a).addcmul_(g_re, b, value=-1.0).mul_(sign), y_ids),  # d/dd
        )
        grads: list[Tensor | None] = []
        for table, need, (rows_grad, ids) in zip(tables, needs, parts):
            grads.append(table.new_zeros(table.shape).index_add_(0, ids, rows_grad())
                         if need else None)
        return (None,) * 3 + tuple(grads)


def _complex_product_reference(conj: bool, x_ids: Tensor, y_ids: Tensor, x_re: Tensor,
                               x_im: Tensor, y_re: Tensor, y_im: Tensor) -> Tensor:
    """:class:`_ComplexProduct` as an autograd composition."""
    a, b = gather_rows(x_re, x_ids), gather_rows(x_im, x_ids)
    c, d = gather_rows(y_re, y_ids), gather_rows(y_im, y_ids)
    if conj:
        d = -d
    return torch.cat([a * c - b * d, b * c + a * d], dim=-1)


class ModelAdapter(ABC):
    r"""Everything the library needs to know about one PyG KGE model class.

    A query :math:`q \in \mathbb{R}^{D'}` of :math:`(h, r, ?)` or
    :math:`(?, r, t)` is scored against the rows :math:`c` of the entity
    matrix :math:`C \in \mathbb{R}^{E \times D'}` by :meth:`score`; subclasses
    define :math:`q`, :math:`C` and the score. ``D' = 2d`` for complex models
    (``[re, im]``), ``d`` otherwise.

    Attributes:
        name: The :data:`~metasd_pyg.models.factory.MODEL_NAMES` key.
        model_class: The PyG class (matched exactly by :func:`adapter_of`).
        bilinear: Scores are bilinear in the candidate rows,
            :math:`s = \langle q, c\rangle`: a column that no entity row keeps
            contributes nothing, so the pruned student can be compacted to the
            used columns (:func:`~metasd_pyg.training.views.active_units`), and
            DURA applies.
        entity_tables: The entity parameter tables, real first.
        relation_tables: The relation parameter tables, real first.
        pruned_relation_tables: The relation tables the pruner masks
            (:func:`~metasd_pyg.pruning.tables.pruned_tables`).
    """

    name: ClassVar[str]
    model_class: ClassVar[type[KGEModel]]
    bilinear: ClassVar[bool]
    entity_tables: ClassVar[tuple[str, ...]] = ENTITY_TABLES[:1]
    relation_tables: ClassVar[tuple[str, ...]] = RELATION_TABLES[:1]
    pruned_relation_tables: ClassVar[tuple[str, ...]] = RELATION_TABLES[:1]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # -- construction and metadata ------------------------------------------------------

    def construction_kwargs(self, margin: float) -> dict[str, Any]:
        """Keyword arguments of :attr:`model_class` beyond the three sizes.

        Args:
            margin: Margin of the distance models (ignored by the others).
        """
        return {}

    def build(
        self, num_entities: int, num_relation_rows: int, dim: int, *, margin: float = 1.0
    ) -> KGEModel:
        """A freshly initialised :attr:`model_class`.

        Args:
            num_entities: Number of entities.
            num_relation_rows: Relation rows of the model (``2 R`` with inverses).
            dim: ``hidden_channels`` (complex dimensions for complex models).
            margin: See :meth:`construction_kwargs`.
        """
        return self.model_class(num_entities, num_relation_rows, dim,
                                **self.construction_kwargs(margin))

    def hyperparameters(self, model: KGEModel) -> dict[str, float]:
        """``margin`` and ``p_norm`` recorded in the model metadata (1.0 where absent).

        Args:
            model: An instance of :attr:`model_class`.
        """
        return {"margin": 1.0, "p_norm": 1.0}

    def restore(self, model: KGEModel, meta: Mapping[str, Any]) -> None:
        """Set the attributes of a rebuilt ``model`` that construction does not.

        Args:
            model: A model built from ``meta``.
            meta: The mapping of :func:`~metasd_pyg.models.factory.model_metadata`.
        """
        return None

    # -- scoring ---------------------------------------------------------------------------

    @abstractmethod
    def tail_query(
        self, model: KGEModel, head: Tensor, rel: Tensor, weights: Weights | None = None
    ) -> Tensor:
        """Query vectors ``[B, D']`` of ``(head, rel, ?)`` in the candidate space.

        Args:
            model: An instance of :attr:`model_class`.
            head: ``[B]`` head entities.
            rel: ``[B]`` relation rows.
            weights: Optional parameter overrides.
        """

    @abstractmethod
    def head_query(
        self, model: KGEModel, rel: Tensor, tail: Tensor, weights: Weights | None = None
    ) -> Tensor:
        """Query vectors ``[B, D']`` of ``(?, rel, tail)`` in the candidate space.

        Args:
            model: An instance of :attr:`model_class`.
            rel: ``[B]`` relation rows.
            tail: ``[B]`` tail entities.
            weights: Optional parameter overrides.
        """

    @abstractmethod
    def entity_matrix(
        self, model: KGEModel, weights: Weights | None = None, candidates: Tensor | None = None
    ) -> Tensor:
        """Candidate-side entity rows ``[E, D']`` (or ``candidates.shape + [D']``).

        With ``candidates`` the rows are gathered table by table before any
        concatenation or normalisation, so a few candidates out of millions of
        entities never touch the whole table.

        Args:
            model: An instance of :attr:`model_class`.
            weights: Optional parameter overrides.
            candidates: Optional entity ids, 1-D ``[C]`` or 2-D ``[B, C]``.
        """

    @abstractmethod
    def score(self, model: KGEModel, query: Tensor, cand: Tensor) -> Tensor:
        """Scores ``[B, C]`` of queries ``[B, D']`` against candidate rows.

        Args:
            model: An instance of :attr:`model_class`.
            query: ``[B, D']`` from :meth:`tail_query` or :meth:`head_query`.
            cand: ``[C, D']`` rows shared by the batch or ``[B, C, D']`` per
                query, from :meth:`entity_matrix`.
        """

    def twice_differentiable_score(self, model: KGEModel, query: Tensor, cand: Tensor) -> Tensor:
        """:meth:`score` through operations with a second derivative (the meta step's).

        The same values as :meth:`score`; the default is :meth:`score` itself.

        Args:
            model: An instance of :attr:`model_class`.
            query: ``[B, D']`` queries.
            cand: ``[C, D']`` candidate rows shared by the batch.
        """
        return self.score(model, query, cand)

    @abstractmethod
    def score_relations(
        self, model: KGEModel, head: Tensor, tail: Tensor, weights: Weights | None = None
    ) -> Tensor:
        """Scores ``[B, R_model]`` of ``(head[i], r, tail[i])`` for every relation row ``r``.

        Args:
            model: An instance of :attr:`model_class`.
            head: ``[B]`` head entities.
            tail: ``[B]`` tail entities.
            weights: Optional parameter overrides.
        """

    def candidate_rows(
        self, model: KGEModel, weights: Weights | None, name: str, candidates: Tensor
    ) -> Tensor:
        """Rows ``[B, C, d]`` of table ``name`` at per-query ``candidates [B, C]``.

        One ``index_select`` straight into the block: nothing of the size of
        the table is copied.
        """
        B, C = candidates.shape
        flat = candidates.reshape(-1)
        return parameter(model, weights, name).index_select(0, flat).view(B, C, -1)

    @abstractmethod
    def candidate_scores(
        self, model: KGEModel, query: Tensor, candidates: Tensor, weights: Weights | None = None
    ) -> Tensor:
        """Scores ``[B, C]`` of ``query [B, D']`` against its own ``candidates [B, C]``.

        The OGB protocol (:func:`~metasd_pyg.evaluation.candidates.score_candidates`):
        candidate rows come from :meth:`candidate_rows`, as ``[B, C, d]``
        blocks, and are scored with batched products; the values are those
        of :meth:`score` on ``entity_matrix(model, weights, candidates)``.

        Args:
            model: An instance of :attr:`model_class`.
            query: ``[B, D']`` queries.
            candidates: ``[B, C]`` candidate entities per query.
            weights: Optional parameter overrides.
        """

    def entity_width(self, model: KGEModel, weights: Weights | None = None) -> int:
        """``D'``: reals per candidate row (the columns of all entity tables)."""
        return sum(parameter(model, weights, n).size(-1) for n in self.entity_tables)

    # -- regularisers ----------------------------------------------------------------------

    @property
    def supports_dura(self) -> bool:
        """Whether DURA (Zhang et al. 2020, https://arxiv.org/abs/2011.05816) applies.

        DURA is defined for bilinear models only.
        """
        return self.bilinear

    @abstractmethod
    def entity_squared_moduli(
        self, model: KGEModel, weights: Weights | None, head: Tensor, tail: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Squared moduli ``[B, d]`` per coordinate of the ``head`` and ``tail`` rows."""

    @abstractmethod
    def relation_squared_moduli(
        self, model: KGEModel, weights: Weights | None, rel: Tensor
    ) -> Tensor | None:
        """Squared moduli ``[B, d]`` per coordinate of the ``rel`` rows.

        ``None`` when relations are not penalised.
        """

    def squared_moduli(
        self, model: KGEModel, batch: Tensor, weights: Weights | None = None
    ) -> tuple[Tensor, Tensor | None, Tensor]:
        r"""Per-coordinate squared moduli of the head, relation and tail rows of ``batch``.

        :math:`|x_k|^2 = \mathrm{re}_k^2 + \mathrm{im}_k^2` per complex
        coordinate (ComplEx, RotatE), :math:`x_k^2` per real one (DistMult,
        TransE). No square root is taken, so gradients are finite (zero) at
        exact zeros. The relation entry is ``None`` where relations are not
        penalised (RotatE: unit-modulus rotations). Used by
        :func:`~metasd_pyg.training.losses.dura` and
        :func:`~metasd_pyg.training.losses.n3`.

        Args:
            model: An instance of :attr:`model_class`.
            batch: ``[B, 3]`` rows ``(h, r, t)``.
            weights: Optional parameter overrides.

        Returns:
            ``(h2 [B, d], r2 [B, d] or None, t2 [B, d])``.
        """
        h, r, t = batch[:, 0], batch[:, 1], batch[:, 2]
        h2, t2 = self.entity_squared_moduli(model, weights, h, t)
        return h2, self.relation_squared_moduli(model, weights, r), t2


class BilinearAdapter(ModelAdapter):
    r"""A model whose score is the inner product :math:`s = \langle q, c\rangle`.

    Every candidate is scored with one matrix product (as in
    facebookresearch/kbc): ``query @ C.T`` for shared candidates,
    ``einsum("bd,bcd->bc")`` per query.
    """

    bilinear: ClassVar[bool] = True

    def score(self, model: KGEModel, query: Tensor, cand: Tensor) -> Tensor:
        return _bilinear(query, cand)


class DistanceAdapter(ModelAdapter):
    r"""A model whose score is a function of a distance, :math:`s = f(\lVert q - c\rVert_p)`.

    :meth:`score` uses one :func:`torch.cdist`; its backward has no
    derivative, so :meth:`twice_differentiable_score` broadcasts the
    differences (memory ``B x C x D'``) for the meta step's second-order
    gradient.
    """

    bilinear: ClassVar[bool] = False

    @abstractmethod
    def distance_p(self, model: KGEModel) -> float:
        """The :math:`p` of the distance."""

    @abstractmethod
    def from_distance(self, model: KGEModel, dist: Tensor) -> Tensor:
        """The score :math:`f(\\text{dist})`."""

    def score(self, model: KGEModel, query: Tensor, cand: Tensor) -> Tensor:
        return self.from_distance(model, _distance(query, cand, self.distance_p(model)))

    def twice_differentiable_score(self, model: KGEModel, query: Tensor, cand: Tensor) -> Tensor:
        r"""The scores of :meth:`score` without ``cdist``.

        :math:`\lVert x\rVert_1 = \sum_k |x_k|`; otherwise
        :math:`(\sum_k |x_k|^p + 10^{-12})^{1/p}`, whose second derivative is
        finite at zero distance.
        """
        p = self.distance_p(model)
        diff = query[:, None, :] - cand[None, :, :]
        if p == 1.0:
            dist = diff.abs().sum(-1)
        else:
            # sqrt(x + tiny): finite second derivative at zero distance
            dist = (diff.abs().pow(p).sum(-1) + 1e-12).pow(1.0 / p)
        return self.from_distance(model, dist)


class ComplExAdapter(BilinearAdapter):
    r"""ComplEx (Trouillon et al. 2016, https://arxiv.org/abs/1606.06357).

    .. math::
        s(h, r, t) = \mathrm{Re}\langle h, r, \bar t\rangle
                   = \langle h \circ r, t\rangle_\mathbb{R}
                   = \langle r \circ \bar t, h\rangle_\mathbb{R}

    with :math:`\langle a, b\rangle_\mathbb{R} = \langle \mathrm{re}\,a, \mathrm{re}\,b\rangle
    + \langle \mathrm{im}\,a, \mathrm{im}\,b\rangle`: the tail query is
    :math:`h \circ r`, the head query :math:`\bar r \circ t` conjugated,
    i.e. ``[r_re t_re + r_im t_im, r_re t_im - r_im t_re]``, and the
    candidate rows are ``[e_re, e_im]``.
    """

    name = "complex"
    model_class = ComplEx
    entity_tables = ENTITY_TABLES
    relation_tables = RELATION_TABLES
    pruned_relation_tables = RELATION_TABLES

    def tail_query(
        self, model: KGEModel, head: Tensor, rel: Tensor, weights: Weights | None = None
    ) -> Tensor:
        out: Tensor = _ComplexProduct.apply(
            False, head, rel, *(parameter(model, weights, n) for n in ENTITY_TABLES),
            *(parameter(model, weights, n) for n in RELATION_TABLES))
        return out

    def head_query(
        self, model: KGEModel, rel: Tensor, tail: Tensor, weights: Weights | None = None
    ) -> Tensor:
        out: Tensor = _ComplexProduct.apply(
            True, tail, rel, *(parameter(model, weights, n) for n in ENTITY_TABLES),
            *(parameter(model, weights, n) for n in RELATION_TABLES))
        return out

    def entity_matrix(
        self, model: KGEModel, weights: Weights | None = None, candidates: Tensor | None = None
    ) -> Tensor:
        return _complex_entity_matrix(model, weights, candidates)

    def score_relations(
        self, model: KGEModel, head: Tensor, tail: Tensor, weights: Weights | None = None
    ) -> Tensor:
        r"""Relation scores :math:`\langle q, r\rangle_\mathbb{R}` for every relation row.

        :math:`\mathrm{Re}\langle h, r, \bar t\rangle = \langle q, r\rangle_\mathbb{R}`
        with :math:`q = \bar h \circ t`, i.e.
        ``[h_re t_re + h_im t_im, h_re t_im - h_im t_re]``: one product with
        the ``[R, 2d]`` relation matrix ``[r_re, r_im]``.
        """
        h_re = gather_rows(parameter(model, weights, "node_emb.weight"), head)
        t_re = gather_rows(parameter(model, weights, "node_emb.weight"), tail)
        rel_re = parameter(model, weights, "rel_emb.weight")
        h_im = gather_rows(parameter(model, weights, "node_emb_im.weight"), head)
        t_im = gather_rows(parameter(model, weights, "node_emb_im.weight"), tail)
        rel_im = parameter(model, weights, "rel_emb_im.weight")
        q = torch.cat([h_re * t_re + h_im * t_im, h_re * t_im - h_im * t_re], dim=-1)
        return q @ torch.cat([rel_re, rel_im], dim=-1).t()

    def candidate_scores(
        self, model: KGEModel, query: Tensor, candidates: Tensor, weights: Weights | None = None
    ) -> Tensor:
        re = self.candidate_rows(model, weights, "node_emb.weight", candidates)
        im = self.candidate_rows(model, weights, "node_emb_im.weight", candidates)
        d = re.size(-1)
        q_re, q_im = query[:, :d], query[:, d:]
        out = torch.bmm(re, q_re.unsqueeze(2)) + torch.bmm(im, q_im.unsqueeze(2))
        return out.squeeze(2)

    def entity_squared_moduli(
        self, model: KGEModel, weights: Weights | None, head: Tensor, tail: Tensor
    ) -> tuple[Tensor, Tensor]:
        return _complex_entity_moduli(model, weights, head, tail)

    def relation_squared_moduli(
        self, model: KGEModel, weights: Weights | None, rel: Tensor
    ) -> Tensor | None:
        r = gather_rows(parameter(model, weights, "rel_emb.weight"), rel)
        r2 = r * r
        r_im = gather_rows(parameter(model, weights, "rel_emb_im.weight"), rel)
        return r2 + r_im * r_im


class DistMultAdapter(BilinearAdapter):
    r"""DistMult (Yang et al. 2015, https://arxiv.org/abs/1412.6575).

    .. math::
        s(h, r, t) = \langle h, r, t\rangle = \langle h \circ r, t\rangle
                   = \langle r \circ t, h\rangle

    Tail query :math:`h \circ r`, head query :math:`t \circ r`, candidate
    rows the entity table itself. PyG's DistMult holds a ``margin`` (of its
    own ranking loss) that scoring never uses; it is recorded in the metadata
    as it is.
    """

    name = "distmult"
    model_class = DistMult

    def hyperparameters(self, model: KGEModel) -> dict[str, float]:
        return {"margin": float(model.margin), "p_norm": 1.0}

    def tail_query(
        self, model: KGEModel, head: Tensor, rel: Tensor, weights: Weights | None = None
    ) -> Tensor:
        h_re = gather_rows(parameter(model, weights, "node_emb.weight"), head)
        return h_re * gather_rows(parameter(model, weights, "rel_emb.weight"), rel)

    def head_query(
        self, model: KGEModel, rel: Tensor, tail: Tensor, weights: Weights | None = None
    ) -> Tensor:
        t_re = gather_rows(parameter(model, weights, "node_emb.weight"), tail)
        return t_re * gather_rows(parameter(model, weights, "rel_emb.weight"), rel)

    def entity_matrix(
        self, model: KGEModel, weights: Weights | None = None, candidates: Tensor | None = None
    ) -> Tensor:
        table = parameter(model, weights, "node_emb.weight")
        return table if candidates is None else gather_rows(table, candidates)

    def score_relations(
        self, model: KGEModel, head: Tensor, tail: Tensor, weights: Weights | None = None
    ) -> Tensor:
        r"""Relation scores :math:`\langle h \circ t, r\rangle` (one product with the table)."""
        h_re = gather_rows(parameter(model, weights, "node_emb.weight"), head)
        t_re = gather_rows(parameter(model, weights, "node_emb.weight"), tail)
        rel_re = parameter(model, weights, "rel_emb.weight")
        return (h_re * t_re) @ rel_re.t()

    def candidate_scores(
        self, model: KGEModel, query: Tensor, candidates: Tensor, weights: Weights | None = None
    ) -> Tensor:
        rows = self.candidate_rows(model, weights, "node_emb.weight", candidates)
        return torch.bmm(rows, query.unsqueeze(2)).squeeze(2)

    def entity_squared_moduli(
        self, model: KGEModel, weights: Weights | None, head: Tensor, tail: Tensor
    ) -> tuple[Tensor, Tensor]:
        return _real_entity_moduli(model, weights, head, tail)

    def relation_squared_moduli(
        self, model: KGEModel, weights: Weights | None, rel: Tensor
    ) -> Tensor | None:
        r = gather_rows(parameter(model, weights, "rel_emb.weight"), rel)
        return r * r


class RotatEAdapter(DistanceAdapter):
    r"""RotatE (Sun et al. 2019, https://arxiv.org/abs/1902.10197).

    .. math::
        s(h, r, t) = \gamma - \lVert h \circ e^{i\theta_r} - t\rVert_2
                   = \gamma - \lVert h - t \circ e^{-i\theta_r}\rVert_2

    (the rotation has unit modulus). Tail query :math:`h \circ e^{i\theta_r}`,
    head query :math:`t \circ e^{-i\theta_r}`, as ``[re, im]``; candidate rows
    ``[e_re, e_im]``; :math:`\gamma` is the model's ``margin``. The relation
    table holds phases :math:`\theta`: a zero phase is the identity rotation,
    not a removed weight, so relations are neither pruned nor regularised.
    """

    name = "rotate"
    model_class = RotatE
    entity_tables = ENTITY_TABLES
    pruned_relation_tables = ()

    def construction_kwargs(self, margin: float) -> dict[str, Any]:
        return {"margin": margin}

    def hyperparameters(self, model: KGEModel) -> dict[str, float]:
        return {"margin": float(model.margin), "p_norm": 1.0}

    def distance_p(self, model: KGEModel) -> float:
        return 2.0

    def from_distance(self, model: KGEModel, dist: Tensor) -> Tensor:
        out: Tensor = model.margin - dist
        return out

    def tail_query(
        self, model: KGEModel, head: Tensor, rel: Tensor, weights: Weights | None = None
    ) -> Tensor:
        h_re = gather_rows(parameter(model, weights, "node_emb.weight"), head)
        h_im = gather_rows(parameter(model, weights, "node_emb_im.weight"), head)
        c, s = _rotation(model, weights, rel)
        return torch.cat([c * h_re - s * h_im, c * h_im + s * h_re], dim=-1)

    def head_query(
        self, model: KGEModel, rel: Tensor, tail: Tensor, weights: Weights | None = None
    ) -> Tensor:
        # |r| = 1, so ||h o r - t|| = ||h - t o conj(r)||.
        t_re = gather_rows(parameter(model, weights, "node_emb.weight"), tail)
        t_im = gather_rows(parameter(model, weights, "node_emb_im.weight"), tail)
        c, s = _rotation(model, weights, rel)
        return torch.cat([c * t_re + s * t_im, c * t_im - s * t_re], dim=-1)

    def entity_matrix(
        self, model: KGEModel, weights: Weights | None = None, candidates: Tensor | None = None
    ) -> Tensor:
        return _complex_entity_matrix(model, weights, candidates)

    def score_relations(
        self, model: KGEModel, head: Tensor, tail: Tensor, weights: Weights | None = None
    ) -> Tensor:
        r"""Relation scores :math:`\gamma - \lVert h \circ e^{i\theta_r} - t\rVert_2`.

        Broadcast over ``[B, R, d]`` (the rotations differ per relation, so
        no single distance matrix serves).
        """
        h_re = gather_rows(parameter(model, weights, "node_emb.weight"), head)
        t_re = gather_rows(parameter(model, weights, "node_emb.weight"), tail)
        rel_re = parameter(model, weights, "rel_emb.weight")
        h_im = gather_rows(parameter(model, weights, "node_emb_im.weight"), head)
        t_im = gather_rows(parameter(model, weights, "node_emb_im.weight"), tail)
        c, s = torch.cos(rel_re), torch.sin(rel_re)  # [R, D]
        re = c[None] * h_re[:, None] - s[None] * h_im[:, None] - t_re[:, None]
        im = c[None] * h_im[:, None] + s[None] * h_re[:, None] - t_im[:, None]
        out: Tensor = model.margin - torch.sqrt((re * re + im * im).sum(-1))
        return out

    def candidate_scores(
        self, model: KGEModel, query: Tensor, candidates: Tensor, weights: Weights | None = None
    ) -> Tensor:
        re = self.candidate_rows(model, weights, "node_emb.weight", candidates)
        im = self.candidate_rows(model, weights, "node_emb_im.weight", candidates)
        d = re.size(-1)
        q_re, q_im = query[:, :d], query[:, d:]
        dist = ((q_re.unsqueeze(1) - re) ** 2).sum(-1) + ((q_im.unsqueeze(1) - im) ** 2).sum(-1)
        out: Tensor = model.margin - dist.sqrt()
        return out

    def entity_squared_moduli(
        self, model: KGEModel, weights: Weights | None, head: Tensor, tail: Tensor
    ) -> tuple[Tensor, Tensor]:
        return _complex_entity_moduli(model, weights, head, tail)

    def relation_squared_moduli(
        self, model: KGEModel, weights: Weights | None, rel: Tensor
    ) -> Tensor | None:
        return None


class TransEAdapter(DistanceAdapter):
    r"""TransE (Bordes et al. 2013,
    https://papers.nips.cc/paper/5071-translating-embeddings-for-modeling-multi-relational-data).

    .. math::
        s(h, r, t) = -\lVert \hat h + r - \hat t\rVert_p
                   = -\lVert (\hat t - r) - \hat h\rVert_p,
        \qquad \hat x = x / \lVert x\rVert_p

    (PyG normalises the entity rows, not the relations, at every call). Tail
    query :math:`\hat h + r`, head query :math:`\hat t - r`, candidate rows
    :math:`\hat e`; :math:`p` is the model's ``p_norm``, which the metadata
    records and :meth:`restore` sets back.
    """

    name = "transe"
    model_class = TransE

    def construction_kwargs(self, margin: float) -> dict[str, Any]:
        return {"margin": margin}

    def hyperparameters(self, model: KGEModel) -> dict[str, float]:
        return {"margin": float(model.margin), "p_norm": float(model.p_norm)}

    def restore(self, model: KGEModel, meta: Mapping[str, Any]) -> None:
        if "p_norm" in meta:
            model.p_norm = float(meta["p_norm"])

    def distance_p(self, model: KGEModel) -> float:
        return float(model.p_norm)

    def from_distance(self, model: KGEModel, dist: Tensor) -> Tensor:
        return -dist

    def tail_query(
        self, model: KGEModel, head: Tensor, rel: Tensor, weights: Weights | None = None
    ) -> Tensor:
        h_re = gather_rows(parameter(model, weights, "node_emb.weight"), head)
        h = F.normalize(h_re, p=model.p_norm, dim=-1)
        return h + gather_rows(parameter(model, weights, "rel_emb.weight"), rel)

    def head_query(
        self, model: KGEModel, rel: Tensor, tail: Tensor, weights: Weights | None = None
    ) -> Tensor:
        t_re = gather_rows(parameter(model, weights, "node_emb.weight"), tail)
        t = F.normalize(t_re, p=model.p_norm, dim=-1)
        return t - gather_rows(parameter(model, weights, "rel_emb.weight"), rel)

    def entity_matrix(
        self, model: KGEModel, weights: Weights | None = None, candidates: Tensor | None = None
    ) -> Tensor:
        table = parameter(model, weights, "node_emb.weight")
        re = table if candidates is None else gather_rows(table, candidates)
        return F.normalize(re, p=model.p_norm, dim=-1)

    def score_relations(
        self, model: KGEModel, head: Tensor, tail: Tensor, weights: Weights | None = None
    ) -> Tensor:
        r"""Relation scores :math:`-\lVert (\hat t - \hat h) - r\rVert_p`.

        One :func:`torch.cdist` of :math:`\hat t - \hat h` against the relation table.
        """
        h_re = gather_rows(parameter(model, weights, "node_emb.weight"), head)
        t_re = gather_rows(parameter(model, weights, "node_emb.weight"), tail)
        rel_re = parameter(model, weights, "rel_emb.weight")
        h = F.normalize(h_re, p=model.p_norm, dim=-1)
        t = F.normalize(t_re, p=model.p_norm, dim=-1)
        return -torch.cdist(t - h, rel_re, p=model.p_norm)

    def candidate_scores(
        self, model: KGEModel, query: Tensor, candidates: Tensor, weights: Weights | None = None
    ) -> Tensor:
        rows = self.candidate_rows(model, weights, "node_emb.weight", candidates)
        cand = F.normalize(rows, p=model.p_norm, dim=-1)
        return -(query.unsqueeze(1) - cand).norm(p=model.p_norm, dim=-1)

    def entity_squared_moduli(
        self, model: KGEModel, weights: Weights | None, head: Tensor, tail: Tensor
    ) -> tuple[Tensor, Tensor]:
        return _real_entity_moduli(model, weights, head, tail)

    def relation_squared_moduli(
        self, model: KGEModel, weights: Weights | None, rel: Tensor
    ) -> Tensor | None:
        r = gather_rows(parameter(model, weights, "rel_emb.weight"), rel)
        return r * r


#: One adapter per supported model, in :data:`~metasd_pyg.models.factory.MODEL_NAMES` order.
ADAPTERS: tuple[ModelAdapter, ...] = (
    ComplExAdapter(), DistMultAdapter(), RotatEAdapter(), TransEAdapter(),
)

_BY_CLASS: dict[type, ModelAdapter] = {a.model_class: a for a in ADAPTERS}
_BY_NAME: dict[str, ModelAdapter] = {a.name: a for a in ADAPTERS}


def adapter_of(model: nn.Module) -> ModelAdapter:
    """The adapter of ``model``'s class (exact class: a subclass is not supported).

    Args:
        model: A PyG KGE model instance.

    Raises:
        ConfigError: The class has no adapter (the message names it).
    """
    adapter = _BY_CLASS.get(type(model))
    if adapter is None:
        known = ", ".join(a.model_class.__name__ for a in ADAPTERS)
        raise ConfigError(f"unsupported model class {type(model).__name__}; supported: {known}")
    return adapter


def adapter_for(name: str) -> ModelAdapter:
    """The adapter of model ``name`` (a :data:`~metasd_pyg.models.factory.MODEL_NAMES` key).

    Args:
        name: Model name, case-insensitive.

    Raises:
        ConfigError: Unknown name.
    """
    adapter = _BY_NAME.get(name.lower())
    if adapter is None:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(_BY_NAME)}")
    return adapter
