r"""Scoring modes for PyG's KGE models: triples, all tails, all heads, relations.

As in LibKGE, a model scores triples (``spo``), a batch of ``(h, r)`` against
every entity as tail (``sp_``), a batch of ``(r, t)`` against every entity as
head (``_po``), and ``(h, t)`` against every relation (``s_o``). Bilinear models
(ComplEx, DistMult) score all candidates with one matrix product (as in
facebookresearch/kbc); distance models (TransE, RotatE) with one
:func:`torch.cdist`. No Python loop runs over queries or candidates.

Every function takes an optional ``weights`` mapping (parameter name ->
tensor) that replaces the model's own parameters, the way
:func:`torch.func.functional_call` does: this is how the pruned student (a
masked view of the teacher's tables) and the virtual student of the meta step
are scored without copying the model.

``candidates`` restricts scoring to given entities: a 1-D ``[C]`` tensor shared
by the batch (sampled negatives), or a 2-D ``[B, C]`` tensor per query (the
OGB protocol).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn.kge import ComplEx, DistMult, KGEModel, RotatE, TransE

Weights = Mapping[str, Tensor]

ENTITY_TABLES = ("node_emb.weight", "node_emb_im.weight")
RELATION_TABLES = ("rel_emb.weight", "rel_emb_im.weight")


def model_weights(model: KGEModel) -> dict[str, Tensor]:
    """The model's parameters as a name -> tensor dict (the default weights)."""
    return dict(model.named_parameters())


def parameter(model: KGEModel, weights: Weights | None, name: str) -> Tensor:
    """Parameter ``name`` of ``model``, or its override in ``weights`` if there is one."""
    if weights is not None and name in weights:
        return weights[name]
    return model.get_parameter(name)


def score_triples(
    model: KGEModel, head: Tensor, rel: Tensor, tail: Tensor, weights: Weights | None = None
) -> Tensor:
    """Scores ``[B]`` of triples, exactly ``model(head, rel, tail)`` under ``weights``."""
    if weights is None:
        out: Tensor = model(head, rel, tail)
        return out
    full = dict(model_weights(model))
    full.update(weights)
    out = torch.func.functional_call(model, full, (head, rel, tail))
    return out


def entity_matrix(
    model: KGEModel, weights: Weights | None, candidates: Tensor | None = None
) -> Tensor:
    """Candidate-side entity representation ``[E, D']`` (or of the candidates only).

    With ``candidates`` the rows are gathered table by table before any
    concatenation or normalisation, so a few candidates out of millions of
    entities never touch the whole table.
    """

    def rows(name: str) -> Tensor:
        table = parameter(model, weights, name)
        return table if candidates is None else table[candidates]

    re = rows("node_emb.weight")
    if isinstance(model, ComplEx | RotatE):
        return torch.cat([re, rows("node_emb_im.weight")], dim=-1)
    if isinstance(model, TransE):
        return F.normalize(re, p=model.p_norm, dim=-1)
    return re


def _bilinear(query: Tensor, cand: Tensor) -> Tensor:
    if cand.dim() == 2:
        return query @ cand.t()
    return torch.einsum("bd,bcd->bc", query, cand)


def _distance(query: Tensor, cand: Tensor, p: float) -> Tensor:
    if cand.dim() == 2:
        return torch.cdist(query, cand, p=p)
    return torch.cdist(query.unsqueeze(1), cand, p=p).squeeze(1)


def _rotation(model: KGEModel, weights: Weights | None, rel: Tensor) -> tuple[Tensor, Tensor]:
    theta = parameter(model, weights, "rel_emb.weight")[rel]
    return torch.cos(theta), torch.sin(theta)


def tail_query(
    model: KGEModel, head: Tensor, rel: Tensor, weights: Weights | None = None
) -> Tensor:
    """Query vectors ``[B, D']`` of ``(head, rel, ?)`` in the candidate space."""
    h_re = parameter(model, weights, "node_emb.weight")[head]
    if isinstance(model, ComplEx):
        h_im = parameter(model, weights, "node_emb_im.weight")[head]
        r_re = parameter(model, weights, "rel_emb.weight")[rel]
        r_im = parameter(model, weights, "rel_emb_im.weight")[rel]
        return torch.cat([h_re * r_re - h_im * r_im, h_im * r_re + h_re * r_im], dim=-1)
    if isinstance(model, DistMult):
        return h_re * parameter(model, weights, "rel_emb.weight")[rel]
    if isinstance(model, RotatE):
        h_im = parameter(model, weights, "node_emb_im.weight")[head]
        c, s = _rotation(model, weights, rel)
        return torch.cat([c * h_re - s * h_im, c * h_im + s * h_re], dim=-1)
    if isinstance(model, TransE):
        h = F.normalize(h_re, p=model.p_norm, dim=-1)
        return h + parameter(model, weights, "rel_emb.weight")[rel]
    raise TypeError(f"unsupported model {type(model).__name__}")


def head_query(
    model: KGEModel, rel: Tensor, tail: Tensor, weights: Weights | None = None
) -> Tensor:
    """Query vectors ``[B, D']`` of ``(?, rel, tail)`` in the candidate space."""
    t_re = parameter(model, weights, "node_emb.weight")[tail]
    if isinstance(model, ComplEx):
        t_im = parameter(model, weights, "node_emb_im.weight")[tail]
        r_re = parameter(model, weights, "rel_emb.weight")[rel]
        r_im = parameter(model, weights, "rel_emb_im.weight")[rel]
        return torch.cat([r_re * t_re + r_im * t_im, r_re * t_im - r_im * t_re], dim=-1)
    if isinstance(model, DistMult):
        return t_re * parameter(model, weights, "rel_emb.weight")[rel]
    if isinstance(model, RotatE):
        # |r| = 1, so ||h o r - t|| = ||h - t o conj(r)||.
        t_im = parameter(model, weights, "node_emb_im.weight")[tail]
        c, s = _rotation(model, weights, rel)
        return torch.cat([c * t_re + s * t_im, c * t_im - s * t_re], dim=-1)
    if isinstance(model, TransE):
        t = F.normalize(t_re, p=model.p_norm, dim=-1)
        return t - parameter(model, weights, "rel_emb.weight")[rel]
    raise TypeError(f"unsupported model {type(model).__name__}")


def _finish(model: KGEModel, query: Tensor, cand: Tensor) -> Tensor:
    if isinstance(model, ComplEx | DistMult):
        return _bilinear(query, cand)
    if isinstance(model, RotatE):
        return model.margin - _distance(query, cand, 2.0)
    if isinstance(model, TransE):
        return -_distance(query, cand, model.p_norm)
    raise TypeError(f"unsupported model {type(model).__name__}")


def score_tails(
    model: KGEModel,
    head: Tensor,
    rel: Tensor,
    weights: Weights | None = None,
    candidates: Tensor | None = None,
) -> Tensor:
    """Scores of ``(head[i], rel[i], e)`` for every entity ``e`` (``[B, E]``) or candidate."""
    query = tail_query(model, head, rel, weights)
    return _finish(model, query, entity_matrix(model, weights, candidates))


def score_heads(
    model: KGEModel,
    rel: Tensor,
    tail: Tensor,
    weights: Weights | None = None,
    candidates: Tensor | None = None,
) -> Tensor:
    """Scores of ``(e, rel[i], tail[i])`` for every entity ``e`` (``[B, E]``) or candidate.

    This is direct head scoring with relation ``rel``. For a model trained with
    reciprocal relations, head prediction is ``score_tails(model, tail, rel + R)``.
    """
    query = head_query(model, rel, tail, weights)
    return _finish(model, query, entity_matrix(model, weights, candidates))


def score_relations(
    model: KGEModel, head: Tensor, tail: Tensor, weights: Weights | None = None
) -> Tensor:
    """Scores ``[B, R_model]`` of ``(head[i], r, tail[i])`` for every relation row ``r``.

    Used by the relation-prediction auxiliary loss (Chen et al. 2021,
    https://arxiv.org/abs/2110.02834).
    """
    h_re = parameter(model, weights, "node_emb.weight")[head]
    t_re = parameter(model, weights, "node_emb.weight")[tail]
    rel_re = parameter(model, weights, "rel_emb.weight")
    if isinstance(model, ComplEx):
        h_im = parameter(model, weights, "node_emb_im.weight")[head]
        t_im = parameter(model, weights, "node_emb_im.weight")[tail]
        rel_im = parameter(model, weights, "rel_emb_im.weight")
        q = torch.cat([h_re * t_re + h_im * t_im, h_re * t_im - h_im * t_re], dim=-1)
        return q @ torch.cat([rel_re, rel_im], dim=-1).t()
    if isinstance(model, DistMult):
        return (h_re * t_re) @ rel_re.t()
    if isinstance(model, TransE):
        h = F.normalize(h_re, p=model.p_norm, dim=-1)
        t = F.normalize(t_re, p=model.p_norm, dim=-1)
        return -torch.cdist(t - h, rel_re, p=model.p_norm)
    if isinstance(model, RotatE):
        h_im = parameter(model, weights, "node_emb_im.weight")[head]
        t_im = parameter(model, weights, "node_emb_im.weight")[tail]
        c, s = torch.cos(rel_re), torch.sin(rel_re)  # [R, D]
        re = c[None] * h_re[:, None] - s[None] * h_im[:, None] - t_re[:, None]
        im = c[None] * h_im[:, None] + s[None] * h_re[:, None] - t_im[:, None]
        return model.margin - torch.sqrt((re * re + im * im).sum(-1))
    raise TypeError(f"unsupported model {type(model).__name__}")
