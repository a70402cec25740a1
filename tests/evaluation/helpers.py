import copy

import torch

from metasd_pyg.data import KnowledgeGraph
from metasd_pyg.models import model_weights


def random_graph(E=30, R=4, n_train=150, n_valid=20, n_test=25, seed=0, name="toy"):
    """A small random graph (duplicates across splits allowed, as in real data)."""
    g = torch.Generator().manual_seed(seed)

    def triples(n):
        return torch.stack([torch.randint(0, E, (n,), generator=g),
                            torch.randint(0, R, (n,), generator=g),
                            torch.randint(0, E, (n,), generator=g)], 1)

    return KnowledgeGraph(name, triples(n_train), triples(n_valid), triples(n_test), E, R)


def known_triples(graph):
    return {tuple(x) for x in torch.cat([graph.train, graph.valid, graph.test]).tolist()}


def brute_rank(scores_row, target, excluded, tie):
    """Rank of scores_row[target] with a Python loop (excluded: columns to skip)."""
    st = float(scores_row[target])
    gt = eq = 0
    n = 1
    for c, s in enumerate(scores_row.tolist()):
        if c == target or c in excluded:
            continue
        n += 1
        if s != s:  # NaN candidate: below
            continue
        if s > st:
            gt += 1
        elif s == st:
            eq += 1
    if st != st:
        return float(n)
    opt, pess = 1 + gt, 1 + gt + eq
    return {"optimistic": opt, "pessimistic": pess, "realistic": (opt + pess) / 2}[tie]


def masked_twin(model, seed, drop):
    """Randomly masked weights of ``model`` and a deep copy holding them as parameters."""
    gen = torch.Generator().manual_seed(seed)
    masked = {k: v.detach() * (torch.rand(v.shape, generator=gen) > drop)
              for k, v in model_weights(model).items()}
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for k, p in twin.named_parameters():
            p.copy_(masked[k])
    return masked, twin
