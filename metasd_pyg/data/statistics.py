r"""Graph statistics and the filter index, vectorised.

Everything here is computed with tensor operations (PyG's
:func:`~torch_geometric.utils.degree`, ``torch.unique``, ``torch.bincount``,
``torch.searchsorted``); there is no Python loop over triples, so a graph of
the size of ogbl-wikikg2 (16M triples) takes seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch_geometric.utils import degree

if TYPE_CHECKING:
    from metasd_pyg.data.graph import KnowledgeGraph

#: Names of the relation categories, indexed by the codes in
#: :attr:`GraphStatistics.relation_category`.
CATEGORY_NAMES: tuple[str, str, str, str] = ("1-1", "1-N", "N-1", "N-N")

#: Threshold of the Bordes et al. (2013) rule.
CATEGORY_THRESHOLD = 1.5


def _unique_count(keys: Tensor) -> int:
    return int(torch.unique(keys).numel())


@dataclass(frozen=True)
class GraphStatistics:
    r"""Statistics of a knowledge graph, counted on the **train** split.

    Relation categories follow Bordes et al. (2013), "Translating Embeddings
    for Modeling Multi-relational Data" (https://papers.nips.cc/paper/5071):
    for relation :math:`r`, with :math:`T_r` its distinct train triples,

    .. math::
        \mathrm{tph}_r = \frac{|T_r|}{|\{(h, r)\}|}, \qquad
        \mathrm{hpt}_r = \frac{|T_r|}{|\{(r, t)\}|},

    (average number of tails per head and heads per tail). With threshold
    1.5: ``1-1`` if both are < 1.5, ``1-N`` if only tph >= 1.5, ``N-1`` if
    only hpt >= 1.5, ``N-N`` if both are >= 1.5. Relations absent from train
    get category ``1-1`` with tph = hpt = 0.

    Attributes:
        out_degree: ``[E]`` number of train triples with the entity as head.
        in_degree: ``[E]`` number of train triples with the entity as tail.
        degree: ``[E]`` ``in_degree + out_degree``.
        relation_frequency: ``[R]`` train triples per relation.
        tails_per_head: ``[R]`` tph as defined above.
        heads_per_tail: ``[R]`` hpt as defined above.
        relation_category: ``[R]`` codes into :data:`CATEGORY_NAMES`.
        unseen: per split (valid, test), number of triples whose head or tail
            never occurs in train.
        duplicates: per split, duplicate triples (dropped at load time plus
            any still present in the tensors).
    """

    out_degree: Tensor
    in_degree: Tensor
    degree: Tensor
    relation_frequency: Tensor
    tails_per_head: Tensor
    heads_per_tail: Tensor
    relation_category: Tensor
    unseen: dict[str, int]
    duplicates: dict[str, int]

    @staticmethod
    def compute(graph: KnowledgeGraph) -> GraphStatistics:
        """Compute the statistics of ``graph`` (see the class docstring)."""
        E, R = graph.num_entities, graph.num_relations
        train = graph.train
        h, r, t = train[:, 0], train[:, 1], train[:, 2]
        out_deg = degree(h, E, dtype=torch.long)
        in_deg = degree(t, E, dtype=torch.long)
        rel_freq = torch.bincount(r, minlength=R)

        # Distinct triples, and distinct (h, r) / (r, t) pairs, per relation.
        triple_key = (h * R + r) * E + t
        uniq_triples = torch.unique(triple_key)
        u_hr = uniq_triples // E
        u_r = u_hr % R
        n_triples = torch.bincount(u_r, minlength=R).double()
        hr_keys = torch.unique(u_hr)
        n_hr = torch.bincount(hr_keys % R, minlength=R).double()
        u_t = uniq_triples % E
        rt_keys = torch.unique(u_r * E + u_t)
        n_rt = torch.bincount(rt_keys // E, minlength=R).double()
        tph = torch.where(n_hr > 0, n_triples / n_hr.clamp(min=1), torch.zeros_like(n_hr))
        hpt = torch.where(n_rt > 0, n_triples / n_rt.clamp(min=1), torch.zeros_like(n_rt))
        many_tails = (tph >= CATEGORY_THRESHOLD).long()
        many_heads = (hpt >= CATEGORY_THRESHOLD).long()
        category = many_tails + 2 * many_heads  # 0: 1-1, 1: 1-N, 2: N-1, 3: N-N

        seen = (out_deg + in_deg) > 0
        unseen = {}
        for split in ("valid", "test"):
            s = graph.split(split)
            unseen[split] = int((~(seen[s[:, 0]] & seen[s[:, 2]])).sum()) if s.numel() else 0

        duplicates = {}
        for split in ("train", "valid", "test"):
            s = graph.split(split)
            keys = (s[:, 0] * R + s[:, 1]) * E + s[:, 2]
            in_tensor = len(s) - _unique_count(keys) if len(s) else 0
            duplicates[split] = in_tensor + int(graph.num_duplicates.get(split, 0))

        return GraphStatistics(
            out_degree=out_deg,
            in_degree=in_deg,
            degree=out_deg + in_deg,
            relation_frequency=rel_freq,
            tails_per_head=tph.float(),
            heads_per_tail=hpt.float(),
            relation_category=category,
            unseen=unseen,
            duplicates=duplicates,
        )

    @property
    def category_names(self) -> list[str]:
        """Category name of every relation (``"1-1"``, ``"1-N"``, ``"N-1"``, ``"N-N"``)."""
        return [CATEGORY_NAMES[int(c)] for c in self.relation_category]

    def summary(self) -> dict[str, Any]:
        """A JSON-serialisable summary (for ``datasets info`` and reports)."""
        deg = self.degree.double()
        cats = torch.bincount(self.relation_category, minlength=4)
        return {
            "entities_in_train": int((self.degree > 0).sum()),
            "degree_mean": float(deg.mean()) if deg.numel() else 0.0,
            "degree_median": float(deg.median()) if deg.numel() else 0.0,
            "degree_max": int(self.degree.max()) if deg.numel() else 0,
            "relation_categories": {n: int(c) for n, c in zip(CATEGORY_NAMES, cats.tolist())},
            "unseen_entity_triples": dict(self.unseen),
            "duplicate_triples": dict(self.duplicates),
        }


def _lookup(keys: Tensor, ptr: Tensor, vals: Tensor, query: Tensor) -> tuple[Tensor, Tensor]:
    """CSR lookup of many keys at once: (row in query, value) pairs."""
    if keys.numel() == 0 or query.numel() == 0:
        empty = torch.empty(0, dtype=torch.long, device=query.device)
        return empty, empty
    pos = torch.searchsorted(keys, query).clamp(max=keys.numel() - 1)
    found = keys[pos] == query
    start = ptr[pos]
    count = torch.where(found, ptr[pos + 1] - start, torch.zeros_like(start))
    rows = torch.repeat_interleave(torch.arange(query.numel(), device=query.device), count)
    first = torch.cumsum(count, 0) - count
    offsets = torch.arange(rows.numel(), device=query.device) - first[rows]
    return rows, vals[start[rows] + offsets]


def _csr(keys: Tensor, vals: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    order = torch.argsort(keys, stable=True)
    keys, vals = keys[order], vals[order]
    uniq, counts = torch.unique_consecutive(keys, return_counts=True)
    ptr = torch.zeros(uniq.numel() + 1, dtype=torch.long, device=keys.device)
    ptr[1:] = torch.cumsum(counts, 0)
    return uniq, ptr, vals


@dataclass(frozen=True)
class FilterIndex:
    """Index of known true triples for filtered ranking, on both sides.

    Built once from all known triples (train + valid + test). ``tails(h, r)``
    and ``heads(r, t)`` answer a whole batch of queries at once and return
    ``(rows, entities)``: for every query ``i`` in the batch, the pairs
    ``(i, e)`` of its known true answers, to be masked out of the candidates
    (the evaluator restores each query's own target).

    Keys are ``h * R + r`` and ``r * E + t`` in int64 (no overflow up to
    ~10^18, far beyond ogbl-wikikg2's 2.5M x 535).
    """

    num_entities: int
    num_relations: int
    tail_keys: Tensor
    tail_ptr: Tensor
    tail_vals: Tensor
    head_keys: Tensor
    head_ptr: Tensor
    head_vals: Tensor

    @staticmethod
    def build(triples: Tensor, num_entities: int, num_relations: int) -> FilterIndex:
        """Index ``triples`` ``[N, 3]`` (duplicates are removed)."""
        E, R = num_entities, num_relations
        key = (triples[:, 0] * R + triples[:, 1]) * E + triples[:, 2]
        uniq = torch.unique(key)
        hr, t = uniq // E, uniq % E
        h, r = hr // R, hr % R
        tk, tp, tv = _csr(h * R + r, t)
        hk, hp, hv = _csr(r * E + t, h)
        return FilterIndex(E, R, tk, tp, tv, hk, hp, hv)

    def tails(self, head: Tensor, relation: Tensor) -> tuple[Tensor, Tensor]:
        """Known true tails of every query ``(head[i], relation[i], ?)``."""
        return _lookup(self.tail_keys, self.tail_ptr, self.tail_vals,
                       head * self.num_relations + relation)

    def heads(self, relation: Tensor, tail: Tensor) -> tuple[Tensor, Tensor]:
        """Known true heads of every query ``(?, relation[i], tail[i])``."""
        return _lookup(self.head_keys, self.head_ptr, self.head_vals,
                       relation * self.num_entities + tail)

    def to(self, device: torch.device | str) -> FilterIndex:
        """A copy on ``device``."""
        return FilterIndex(
            self.num_entities, self.num_relations,
            *(x.to(device) for x in (self.tail_keys, self.tail_ptr, self.tail_vals,
                                     self.head_keys, self.head_ptr, self.head_vals)),
        )
