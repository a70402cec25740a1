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

Model specifics (queries, candidate rows, the final score) come from the
model's :class:`~metasd_pyg.models.adapters.ModelAdapter`; the functions here
are the model-independent entry points.

``candidates`` restricts scoring to given entities: a 1-D ``[C]`` tensor shared
by the batch (sampled negatives), or a 2-D ``[B, C]`` tensor per query (the
OGB protocol).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.nn.kge import KGEModel

from metasd_pyg.models.adapters import (
    ENTITY_TABLES,
    RELATION_TABLES,
    Weights,
    adapter_of,
    parameter,
)

__all__ = [
    "ENTITY_TABLES",
    "RELATION_TABLES",
    "Weights",
    "entity_matrix",
    "head_query",
    "model_weights",
    "parameter",
    "score_heads",
    "score_relations",
    "score_tails",
    "score_triples",
    "tail_query",
]


def model_weights(model: KGEModel) -> dict[str, Tensor]:
    """The model's parameters as a name -> tensor dict (the default weights)."""
    return dict(model.named_parameters())


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
    entities never touch the whole table
    (:meth:`~metasd_pyg.models.adapters.ModelAdapter.entity_matrix`).
    """
    return adapter_of(model).entity_matrix(model, weights, candidates)


def tail_query(
    model: KGEModel, head: Tensor, rel: Tensor, weights: Weights | None = None
) -> Tensor:
    """Query vectors ``[B, D']`` of ``(head, rel, ?)`` in the candidate space."""
    return adapter_of(model).tail_query(model, head, rel, weights)


def head_query(
    model: KGEModel, rel: Tensor, tail: Tensor, weights: Weights | None = None
) -> Tensor:
    """Query vectors ``[B, D']`` of ``(?, rel, tail)`` in the candidate space."""
    return adapter_of(model).head_query(model, rel, tail, weights)


def score_tails(
    model: KGEModel,
    head: Tensor,
    rel: Tensor,
    weights: Weights | None = None,
    candidates: Tensor | None = None,
) -> Tensor:
    """Scores of ``(head[i], rel[i], e)`` for every entity ``e`` (``[B, E]``) or candidate."""
    adapter = adapter_of(model)
    query = adapter.tail_query(model, head, rel, weights)
    return adapter.score(model, query, adapter.entity_matrix(model, weights, candidates))


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
    adapter = adapter_of(model)
    query = adapter.head_query(model, rel, tail, weights)
    return adapter.score(model, query, adapter.entity_matrix(model, weights, candidates))


def score_relations(
    model: KGEModel, head: Tensor, tail: Tensor, weights: Weights | None = None
) -> Tensor:
    """Scores ``[B, R_model]`` of ``(head[i], r, tail[i])`` for every relation row ``r``.

    Used by the relation-prediction auxiliary loss (Chen et al. 2021,
    https://arxiv.org/abs/2110.02834).
    """
    return adapter_of(model).score_relations(model, head, tail, weights)
