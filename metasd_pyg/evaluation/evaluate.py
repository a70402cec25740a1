r"""One-call evaluation of a PyG KGE model on a split: summary, buckets, ranks.

Both sides of every triple :math:`(h, r, t)` of the split are queries: tail
prediction :math:`(h, r, ?)` and head prediction :math:`(?, r, t)`. A model
trained with reciprocal relations (Lacroix et al. 2018,
https://arxiv.org/abs/1806.07297) answers the head query as the tail query
:math:`(t, r + R, ?)`; otherwise heads are scored directly. Queries are scored
in chunks whose size follows a memory budget; the chunk size never changes a
rank (every query is ranked from its own row). Protocols:

* ``"full"``: rank against all entities, filtered (every other known true
  triple of train, valid and test removed) or raw;
* ``"ogb"``: rank the positive against the split's given candidates
  (ogbl-wikikg2 ``head_neg`` / ``tail_neg``), as OGB's evaluator does. Each
  chunk only touches the entity rows it needs, so nothing of size
  ``[queries, entities]`` is ever built.

Metrics as in MetaSD (Li et al., Findings of EMNLP 2022,
https://aclanthology.org/2022.findings-emnlp.149/).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor
from torch_geometric.nn.kge import KGEModel
from tqdm.auto import tqdm

from metasd_pyg.errors import ConfigError
from metasd_pyg.evaluation.buckets import BUCKET_BY, Bins, make_scheme
from metasd_pyg.evaluation.candidates import score_candidates
from metasd_pyg.evaluation.chunking import (
    DEFAULT_MEMORY_BUDGET_MB,
    candidate_query_bytes,
    chunk_size,
    full_query_bytes,
)
from metasd_pyg.evaluation.metrics import DEFAULT_KS
from metasd_pyg.evaluation.ranks import candidate_ranks, ranks_from_scores
from metasd_pyg.evaluation.result import EvaluationResult
from metasd_pyg.evaluation.sorting import stable_argsort, unique_inverse
from metasd_pyg.evaluation.streaming import RankingEvaluator
from metasd_pyg.models.adapters import adapter_of
from metasd_pyg.models.factory import model_name
from metasd_pyg.models.scoring import (
    Weights,
    parameter,
    score_heads,
    score_tails,
)

if TYPE_CHECKING:
    from metasd_pyg.data.graph import KnowledgeGraph

logger = logging.getLogger(__name__)

#: Accepted values of ``sides``.
SIDE_CHOICES: tuple[str, ...] = ("both", "tail", "head")


def subset_indices(num_triples: int, max_queries: int | None, seed: int = 0) -> Tensor:
    """Deterministic subset of triple rows for quick evaluation (sorted).

    Args:
        num_triples: Number of triples in the split.
        max_queries: Number of triples to keep (``None`` keeps all).
        seed: Seed of the permutation (fixed, so every call picks the same rows).
    """
    if max_queries is None or max_queries >= num_triples:
        return torch.arange(num_triples)
    if int(max_queries) != max_queries or max_queries < 1:
        raise ConfigError(f"max_queries must be a positive integer, got {max_queries!r}")
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(num_triples, generator=gen)[: int(max_queries)].sort().values


def _ogb_side(
    model: KGEModel, weights: Weights | None, triples: Tensor, negatives: Tensor, *,
    side: str, reciprocal: bool, R: int, step: int, tie: str, bar: tqdm,
) -> Tensor:
    """Ranks of one side of ``triples`` against their given candidates (OGB protocol)."""
    device = triples.device
    h, r, t = triples[:, 0], triples[:, 1], triples[:, 2]
    q, target = (h, t) if side == "tail" else (t, h)
    rel = r if side == "tail" or not reciprocal else r + R
    direct_head = side == "head" and not reciprocal
    out = torch.empty(len(triples), dtype=torch.float64, device=device)
    for start in range(0, len(triples), step):
        sl = slice(start, start + step)
        cand = torch.cat([target[sl].unsqueeze(1), negatives[sl].to(device)], dim=1)
        s = score_candidates(model, q[sl], rel[sl], cand, weights=weights, head=direct_head)
        out[sl] = candidate_ranks(s[:, 0], s[:, 1:], tie=tie)
        bar.update(int(cand.size(0)))
    return out


def _full_side(
    model: KGEModel, weights: Weights | None, graph: KnowledgeGraph, triples: Tensor, *,
    side: str, reciprocal: bool, step: int, tie: str, filtered: bool, nan_check: bool,
    bar: tqdm,
) -> Tensor:
    """Ranks of one side of ``triples`` against all entities, filtered or raw.

    Queries with the same (entity, relation) are scored once: the distinct
    queries are sorted, the triples are visited in that order in chunks of
    ``step``, and the filter index is read once for all distinct queries, so
    each chunk's known answers are one contiguous slice.
    """
    device = triples.device
    R = graph.num_relations
    rows_r = int(model.num_relations)
    h, r, t = triples[:, 0], triples[:, 1], triples[:, 2]
    q, target = (h, t) if side == "tail" else (t, h)
    rel = r if side == "tail" or not reciprocal else r + R
    direct_head = side == "head" and not reciprocal
    key, group = unique_inverse(q * rows_r + rel)
    key, group = key.to(device), group.to(device)
    uq, urel = key // rows_r, key % rows_r
    order = stable_argsort(group)
    f_rows = f_ents = ptr = None
    if filtered:
        index = graph.filter_index
        dev = index.tail_keys.device
        base_rel = (urel - R if side == "head" and reciprocal else urel).to(dev)
        if side == "tail":
            f_rows, f_ents = index.tails(uq.to(dev), base_rel)
        else:
            f_rows, f_ents = index.heads(base_rel, uq.to(dev))
        f_rows, f_ents = f_rows.to(device), f_ents.to(device)
        if f_rows.numel() > 1 and not bool((f_rows[1:] >= f_rows[:-1]).all()):
            perm = stable_argsort(f_rows)
            f_rows, f_ents = f_rows[perm], f_ents[perm]
        ptr = torch.zeros(len(key) + 1, dtype=torch.long, device=device)
        ptr[1:] = torch.cumsum(torch.bincount(f_rows, minlength=len(key)), 0)
    out = torch.empty(len(triples), dtype=torch.float64, device=device)
    for start in range(0, len(triples), step):
        sel = order[start:start + step]
        g = group[sel]
        g0, g1 = int(g[0]), int(g[-1]) + 1  # the chunk's distinct queries, contiguous
        if direct_head:
            s = score_heads(model, urel[g0:g1], uq[g0:g1], weights=weights)
        else:
            s = score_tails(model, uq[g0:g1], urel[g0:g1], weights=weights)
        fr = fe = None
        if ptr is not None and f_rows is not None and f_ents is not None:
            a, b = int(ptr[g0]), int(ptr[g1])
            fr, fe = f_rows[a:b] - g0, f_ents[a:b]
        out[sel] = ranks_from_scores(s, target[sel], group=g - g0, filter_rows=fr,
                                     filter_cols=fe, tie=tie, inplace=True,
                                     nan_check=nan_check)
        bar.update(int(sel.numel()))
    return out


def _check_model(model: KGEModel, graph: KnowledgeGraph, reciprocal: bool) -> None:
    if int(model.num_nodes) != graph.num_entities:
        raise ConfigError(
            f"model has {model.num_nodes} entities but graph {graph.name!r} has "
            f"{graph.num_entities}"
        )
    need = 2 * graph.num_relations if reciprocal else graph.num_relations
    if int(model.num_relations) < need:
        mode = "reciprocal" if reciprocal else "direct"
        raise ConfigError(
            f"model has {model.num_relations} relation rows, {mode}"
            f" evaluation on {graph.name!r} needs {need}"
            + (" (pass reciprocal=False for a model without inverse relations)" if reciprocal
               else "")
        )


def evaluate(
    model: KGEModel,
    graph: KnowledgeGraph,
    split: str = "valid",
    *,
    weights: Weights | None = None,
    reciprocal: bool = True,
    filtered: bool = True,
    tie: str = "realistic",
    ks: Sequence[int] = DEFAULT_KS,
    bucket_by: str | None = "target",
    bins: Bins = "log",
    batch_size: int | None = None,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    max_queries: int | None = None,
    sides: str = "both",
    protocol: str = "auto",
    label: str | None = None,
    progress: bool = False,
) -> EvaluationResult:
    r"""Evaluate ``model`` on ``split`` of ``graph``: MRR, MR, Hits@k, buckets, ranks.

    Args:
        model: A PyG KGE model (TransE, DistMult, ComplEx, RotatE).
        graph: The knowledge graph.
        split: ``"valid"`` or ``"test"`` (or ``"train"``).
        weights: Parameter overrides (name -> tensor), e.g. the masked student
            of MetaSD; used for queries and candidates alike.
        reciprocal: Head queries as tail queries on inverse relations
            ``r + R`` (the model must have ``2 R`` relation rows); ``False``
            scores heads directly.
        filtered: Filtered ranking (ignored by the OGB protocol, which ranks
            against the given candidates).
        tie: ``"realistic"`` (default), ``"optimistic"`` or ``"pessimistic"``.
        ks: Hits@k cut-offs.
        bucket_by: ``"target"`` (default), ``"query"``, ``"relation"``,
            ``"category"`` or ``None``.
        bins: ``"log"`` (default), ``"log:B"``, ``"quantile"``,
            ``"quantile:Q"``, an integer, or a list of lower edges.
        batch_size: Queries per chunk (default: from ``memory_budget_mb``).
        memory_budget_mb: Memory for one chunk's score matrices, in MiB.
        max_queries: Evaluate only this many triples of the split (a fixed,
            seeded subset), for quick validation during training.
        sides: ``"both"``, ``"tail"`` or ``"head"``.
        protocol: ``"auto"`` (OGB if the split has given candidates, else
            full), ``"full"`` or ``"ogb"``.
        label: Model label in the result (default: the model's name).
        progress: Show a progress bar (tqdm, stderr).

    Returns:
        An :class:`EvaluationResult`.
    """
    if sides not in SIDE_CHOICES:
        raise ConfigError(f"unknown sides {sides!r}; expected one of {', '.join(SIDE_CHOICES)}")
    if bucket_by is not None and bucket_by not in BUCKET_BY:
        raise ConfigError(
            f"unknown bucket_by {bucket_by!r}; expected one of {', '.join(BUCKET_BY)}"
        )
    make_scheme(bucket_by, bins, np.zeros(1))  # fail on bad bins before any scoring
    triples_all = graph.split(split)
    if protocol == "auto":
        protocol = "ogb" if split in graph.candidates else "full"
    if protocol == "ogb" and split not in graph.candidates:
        raise ConfigError(f"protocol 'ogb' needs given candidates, split {split!r} of "
                          f"{graph.name!r} has none")
    _check_model(model, graph, reciprocal)
    if label is None:
        try:
            label = model_name(model)
        except ConfigError:
            label = type(model).__name__.lower()

    evaluator = RankingEvaluator(graph, filtered=filtered, tie=tie, ks=ks, label=label,
                                 protocol=protocol, split=split)
    idx = subset_indices(len(triples_all), max_queries)
    device = next(model.parameters()).device
    triples = triples_all[idx].to(device)
    idx_dev = idx.to(device)
    R = graph.num_relations
    elem = model.get_parameter("node_emb.weight").element_size()
    if protocol == "ogb":
        every = len(idx) == len(triples_all)  # all queries, in order: no subset copy
        # the whole split's candidates are read chunk by chunk from their (often
        # memory-mapped) arrays: indexing them first would copy 2.4 GB at ogbl-wikikg2 size
        cands = {s: graph.candidates[split][f"{s}_neg"] if every
                 else graph.candidates[split][f"{s}_neg"][idx] for s in ("tail", "head")}
        width = adapter_of(model).entity_width(model, weights)
        n_cand = 1 + max(int(c.size(1)) for c in cands.values())
        step = chunk_size(candidate_query_bytes(n_cand, width, elem), memory_budget_mb,
                          batch_size)
    else:
        step = chunk_size(full_query_bytes(graph.num_entities, elem), memory_budget_mb,
                          batch_size)
    # Finite parameters give NaN-free scores: skip the NaN scan of every score matrix.
    finite = protocol == "ogb" or all(bool(torch.isfinite(parameter(model, weights, n)).all())
                                      for n, _ in model.named_parameters())
    todo = ("tail", "head") if sides == "both" else (sides,)
    logger.debug("evaluating %s on %s/%s: %d triples, sides %s, chunks of %d", label,
                 graph.name, split, len(triples), todo, step)
    was_training = model.training
    model.eval()
    bar = tqdm(total=len(triples) * len(todo), disable=not progress, unit="query",
               desc=f"eval {split}")
    try:
        with torch.no_grad():
            for side in todo:
                if protocol == "ogb":
                    ranks = _ogb_side(model, weights, triples, cands[side], side=side,
                                      reciprocal=reciprocal, R=R, step=step, tie=tie, bar=bar)
                else:
                    ranks = _full_side(model, weights, graph, triples, side=side,
                                       reciprocal=reciprocal, step=step, tie=tie,
                                       filtered=filtered, nan_check=not finite, bar=bar)
                evaluator.update_ranks(ranks, triples, side=side, triple_index=idx_dev)
    finally:
        bar.close()
        model.train(was_training)
    result = evaluator.compute(bucket_by=bucket_by, bins=bins)
    result.config.update({"reciprocal": reciprocal, "sides": sides, "max_queries": max_queries,
                          "chunk_size": step, "masked": weights is not None})
    return result
