"""networkx component count against a naive union-find."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metasd_pyg.data import KnowledgeGraph
from metasd_pyg.data.components import connected_components


def _naive(E, triples):
    parent = list(range(E))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for h, _, t in triples:
        parent[find(h)] = find(t)
    return len({find(e) for e in range(E)})


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12).flatmap(lambda E: st.tuples(
    st.just(E),
    st.lists(st.tuples(st.integers(0, E - 1), st.just(0), st.integers(0, E - 1)),
             min_size=1, max_size=20))))
def test_components_match_union_find(data):
    E, triples = data
    t = torch.tensor(triples).view(-1, 3)
    g = KnowledgeGraph("toy", t, t[:1], t[:1], E, 1)
    assert connected_components(g) == _naive(E, triples)
    assert connected_components(g, max_triples=0) is None
