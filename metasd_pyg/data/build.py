"""Assemble a :class:`KnowledgeGraph` from id triples: duplicate removal, id checks.

Duplicate policy (documented in ``datasets/README.md``): a triple repeated
**within** one split is kept once (its first occurrence, order otherwise
preserved) and the number of dropped copies is stored in
:attr:`KnowledgeGraph.num_duplicates`. Triples shared **between** splits are
left alone (filtered ranking takes care of them).
"""

from __future__ import annotations

import torch
from torch import Tensor

from metasd_pyg.data.graph import SPLITS, KnowledgeGraph


def drop_duplicates(triples: Tensor, num_entities: int, num_relations: int) -> tuple[Tensor, int]:
    """Keep the first occurrence of every distinct triple, in the original order.

    Args:
        triples: ``LongTensor [N, 3]`` (head, relation, tail).
        num_entities: Entity count (for the int64 key ``(h R + r) E + t``).
        num_relations: Relation count.

    Returns:
        The de-duplicated triples and the number of rows dropped.
    """
    if triples.numel() == 0:
        return triples, 0
    E, R = num_entities, num_relations
    key = (triples[:, 0] * R + triples[:, 1]) * E + triples[:, 2]
    uniq, inverse = torch.unique(key, return_inverse=True)
    if uniq.numel() == key.numel():
        return triples, 0
    # First position of each distinct key: scatter-min of positions.
    pos = torch.arange(key.numel(), device=key.device)
    first = torch.full((uniq.numel(),), key.numel(), dtype=torch.long, device=key.device)
    first.scatter_reduce_(0, inverse, pos, reduce="amin")
    keep = torch.sort(first).values
    return triples[keep], int(key.numel() - keep.numel())


def assemble(
    name: str,
    splits: dict[str, Tensor],
    num_entities: int,
    num_relations: int,
    *,
    entity_names: list[str] | None = None,
    relation_names: list[str] | None = None,
    candidates: dict[str, dict[str, Tensor]] | None = None,
    source: str = "",
    dedupe: bool = True,
) -> KnowledgeGraph:
    """Build a :class:`KnowledgeGraph`, dropping within-split duplicates.

    Args:
        name: Dataset name.
        splits: ``{"train": [N, 3], "valid": ..., "test": ...}`` id triples.
        num_entities: Number of entities.
        num_relations: Number of relations.
        entity_names: Optional id -> name list.
        relation_names: Optional id -> name list.
        candidates: Optional OGB-style candidates (never de-duplicated: they
            are aligned row by row with valid/test, which OGB keeps as is).
        source: Provenance string.
        dedupe: Drop duplicates (``False`` for OGB, whose rows align with
            the candidate rows).
    """
    out: dict[str, Tensor] = {}
    dups: dict[str, int] = {}
    for split in SPLITS:
        t = splits[split].to(torch.long).contiguous()
        if dedupe:
            t, n = drop_duplicates(t, num_entities, num_relations)
        else:
            n = 0
        out[split] = t
        dups[split] = n
    return KnowledgeGraph(
        name=name,
        train=out["train"],
        valid=out["valid"],
        test=out["test"],
        num_entities=num_entities,
        num_relations=num_relations,
        entity_names=entity_names,
        relation_names=relation_names,
        candidates=candidates or {},
        num_duplicates=dups,
        source=source,
    )
