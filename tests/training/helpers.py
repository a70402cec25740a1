"""Small, independent helpers for the training tests (naive references, tiny data)."""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from metasd_pyg.data.graph import KnowledgeGraph
from metasd_pyg.models.scoring import score_tails
from tests.paths import DATA_ROOT


def toy_graph(num_entities: int = 12, num_relations: int = 3, n: int = 80, seed: int = 0
              ) -> KnowledgeGraph:
    """A random small graph with disjoint-ish splits."""
    g = torch.Generator().manual_seed(seed)
    h = torch.randint(num_entities, (n,), generator=g)
    r = torch.randint(num_relations, (n,), generator=g)
    t = (h + r + 1) % num_entities
    trip = torch.unique(torch.stack([h, r, t], 1), dim=0)
    perm = torch.randperm(trip.size(0), generator=g)
    trip = trip[perm]
    k = trip.size(0)
    return KnowledgeGraph("toy", trip[: k - 8], trip[k - 8: k - 4], trip[k - 4:],
                          num_entities, num_relations)


def load_small(name: str) -> KnowledgeGraph:
    """UMLS / Kinship from the shared archives (through load_dataset when available)."""
    try:
        from metasd_pyg.data import load_dataset  # type: ignore[attr-defined]

        return load_dataset(name, root=DATA_ROOT, progress=False)  # type: ignore[no-any-return]
    except ImportError:
        pass
    with tarfile.open(DATA_ROOT / f"{name}.tar.gz") as tar:
        files = {}
        for m in tar.getmembers():
            if m.isfile():
                fh = tar.extractfile(m)
                assert fh is not None
                files[Path(m.name).name] = fh.read().decode().split("\n")
    rows = {s: [ln.strip().split("\t") for ln in files[f"{s}.txt"] if ln.strip()]
            for s in ("train", "valid", "test")}
    ents = sorted({x for rs in rows.values() for a, _, b in rs for x in (a, b)})
    rels = sorted({r for rs in rows.values() for _, r, _ in rs})
    ei = {e: i for i, e in enumerate(ents)}
    ri = {r: i for i, r in enumerate(rels)}
    t = {s: torch.tensor([[ei[a], ri[r], ei[b]] for a, r, b in rs], dtype=torch.long)
         for s, rs in rows.items()}
    return KnowledgeGraph(name, t["train"], t["valid"], t["test"], len(ents), len(rels))


@dataclass
class TinyResult:
    summary: dict[str, Any]
    ranks: Tensor = field(default_factory=lambda: torch.empty(0))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.summary)


def tiny_evaluate(model: Any, graph: KnowledgeGraph, split: str = "valid", *,
                  weights: Any = None, max_queries: int | None = None, **_: Any) -> TinyResult:
    """Filtered realistic-tie MRR over both sides (reciprocal), brute force."""
    trip = graph.split(split)
    if max_queries is not None:
        trip = trip[: max_queries]
    R = graph.num_relations
    q = torch.cat([trip, torch.stack([trip[:, 2], trip[:, 1] + R, trip[:, 0]], 1)])
    known = torch.cat([graph.train, graph.valid, graph.test])
    known = torch.cat([known, torch.stack([known[:, 2], known[:, 1] + R, known[:, 0]], 1)])
    with torch.no_grad():
        s = score_tails(model, q[:, 0], q[:, 1], weights=weights).double()
    filt = torch.zeros_like(s, dtype=torch.bool)
    hr = q[:, 0] * 2 * R + q[:, 1]
    khr = known[:, 0] * 2 * R + known[:, 1]
    match = hr[:, None] == khr[None, :]
    rows, cols = match.nonzero(as_tuple=True)
    filt[rows, known[cols, 2]] = True
    filt[torch.arange(len(q)), q[:, 2]] = False
    target = s[torch.arange(len(q)), q[:, 2]]
    s = s.masked_fill(filt, -float("inf"))
    greater = (s > target[:, None]).sum(1)
    equal = (s == target[:, None]).sum(1) - 1
    ranks = greater.double() + 1 + equal.double() / 2
    summ = {"mrr": float((1 / ranks).mean()), "num_queries": len(q)}
    for k in (1, 3, 10):
        summ[f"hits@{k}"] = float((ranks <= k).double().mean())
    return TinyResult(summ, ranks)


class PrefixPruner:
    """Keeps the first k complex dims of every table (aligned, deterministic)."""

    def __init__(self, sparsity: float = 0.9) -> None:
        self.sparsity = sparsity

    def compute(self, model: Any, degree: Tensor | None = None,
                sparsity: float | None = None) -> dict[str, Tensor]:
        s = self.sparsity if sparsity is None else sparsity
        out = {}
        for n, p in model.named_parameters():
            k = max(1, round((1 - s) * p.size(1)))
            m = torch.zeros_like(p, dtype=torch.bool)
            # most important dims by column mass
            order = p.detach().abs().sum(0).argsort(descending=True)
            m[:, order[:k]] = True
            out[n] = m
        return out


class EverySchedule:
    def __init__(self, sparsity: float) -> None:
        self.target = sparsity
        self.every_steps = None

    def sparsity_at(self, epoch: int, step: int) -> float:
        return self.target

    def due(self, epoch: int, step: int) -> bool:
        return step == 0
