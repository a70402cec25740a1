"""The knowledge-graph object every part of the library consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from torch_geometric.data import Data

    from metasd_pyg.data.statistics import FilterIndex, GraphStatistics

SPLITS = ("train", "valid", "test")


@dataclass(eq=False)
class KnowledgeGraph:
    r"""A knowledge graph split into train / valid / test triples.

    Triples are ``LongTensor [N, 3]`` with columns (head, relation, tail); ids
    are consistent across splits and run over ``0 .. num_entities - 1`` and
    ``0 .. num_relations - 1``. Statistics (:attr:`stats`) and the filter index
    (:attr:`filter_index`) are computed on first access and cached.

    Args:
        name: Dataset name (e.g. ``"fb15k-237"``).
        train: Training triples ``[N_train, 3]``.
        valid: Validation triples ``[N_valid, 3]``.
        test: Test triples ``[N_test, 3]``.
        num_entities: Number of entities over all splits.
        num_relations: Number of relations (without reciprocal copies).
        entity_names: ``entity_names[i]`` is the string id of entity ``i``
            (``None`` if the source has none, e.g. the synthetic generator).
        relation_names: Same for relations.
        candidates: For datasets with given negative candidates (OGB
            ogbl-wikikg2): ``{"valid": {"head_neg": [N, C], "tail_neg": [N, C]},
            "test": {...}}``; empty otherwise.
        num_duplicates: Number of duplicate triples dropped per split while
            loading (duplicates are removed; the count is kept for the cards).
        source: Where the data came from (path or description), for reports.
    """

    name: str
    train: Tensor
    valid: Tensor
    test: Tensor
    num_entities: int
    num_relations: int
    entity_names: list[str] | None = None
    relation_names: list[str] | None = None
    candidates: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    num_duplicates: dict[str, int] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        for split in SPLITS:
            t = getattr(self, split)
            if t.dtype != torch.long or t.dim() != 2 or t.size(1) != 3:
                raise ValueError(
                    f"{split} triples must be a LongTensor [N, 3], got {t.dtype} {tuple(t.shape)}"
                )
            if t.numel():
                if int(t[:, [0, 2]].min()) < 0 or int(t[:, [0, 2]].max()) >= self.num_entities:
                    raise ValueError(f"{split}: entity id outside [0, {self.num_entities})")
                if int(t[:, 1].min()) < 0 or int(t[:, 1].max()) >= self.num_relations:
                    raise ValueError(f"{split}: relation id outside [0, {self.num_relations})")

    # ------------------------------------------------------------------ access
    def split(self, name: str) -> Tensor:
        """Triples of split ``name`` (``train``, ``valid`` or ``test``)."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        t: Tensor = getattr(self, name)
        return t

    @property
    def has_candidates(self) -> bool:
        """Whether valid/test come with given negative candidates (OGB protocol)."""
        return bool(self.candidates)

    def head_neg(self, split: str) -> Tensor:
        """Given head candidates ``[N, C]`` of ``split`` (OGB protocol)."""
        return self.candidates[split]["head_neg"]

    def tail_neg(self, split: str) -> Tensor:
        """Given tail candidates ``[N, C]`` of ``split`` (OGB protocol)."""
        return self.candidates[split]["tail_neg"]

    def to_pyg(self, split: str = "train") -> Data:
        """The split as a PyG ``Data(edge_index, edge_type, num_nodes)``."""
        from torch_geometric.data import Data

        t = self.split(split)
        return Data(
            edge_index=t[:, [0, 2]].t().contiguous(),
            edge_type=t[:, 1].contiguous(),
            num_nodes=self.num_entities,
        )

    def entity_id(self, name: str) -> int:
        """Integer id of the entity called ``name`` (``KeyError`` if unknown)."""
        return self._entity_index[name]

    def relation_id(self, name: str) -> int:
        """Integer id of the relation called ``name`` (``KeyError`` if unknown)."""
        return self._relation_index[name]

    @cached_property
    def _entity_index(self) -> dict[str, int]:
        names = self.entity_names or [str(i) for i in range(self.num_entities)]
        return {n: i for i, n in enumerate(names)}

    @cached_property
    def _relation_index(self) -> dict[str, int]:
        names = self.relation_names or [str(i) for i in range(self.num_relations)]
        return {n: i for i, n in enumerate(names)}

    # -------------------------------------------------------------- statistics
    @cached_property
    def stats(self) -> GraphStatistics:
        """Train-split statistics (degrees, relation frequency and category...)."""
        from metasd_pyg.data.statistics import GraphStatistics

        return GraphStatistics.compute(self)

    @cached_property
    def filter_index(self) -> FilterIndex:
        """All known true triples (train + valid + test) for filtered ranking."""
        from metasd_pyg.data.statistics import FilterIndex

        return FilterIndex.build(
            torch.cat([self.train, self.valid, self.test]), self.num_entities, self.num_relations
        )

    def to(self, device: torch.device | str) -> KnowledgeGraph:
        """A copy with all triple and candidate tensors on ``device``."""
        return KnowledgeGraph(
            name=self.name,
            train=self.train.to(device),
            valid=self.valid.to(device),
            test=self.test.to(device),
            num_entities=self.num_entities,
            num_relations=self.num_relations,
            entity_names=self.entity_names,
            relation_names=self.relation_names,
            candidates={
                s: {k: v.to(device) for k, v in d.items()} for s, d in self.candidates.items()
            },
            num_duplicates=dict(self.num_duplicates),
            source=self.source,
        )

    def __repr__(self) -> str:
        return (
            f"KnowledgeGraph({self.name!r}, entities={self.num_entities:,}, "
            f"relations={self.num_relations:,}, train={len(self.train):,}, "
            f"valid={len(self.valid):,}, test={len(self.test):,})"
        )
