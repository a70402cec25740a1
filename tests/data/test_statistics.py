import itertools

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metasd_pyg.data import KnowledgeGraph
from metasd_pyg.data.statistics import CATEGORY_NAMES, FilterIndex


def _graph(triples, E, R):
    t = torch.tensor(triples, dtype=torch.long).view(-1, 3)
    return KnowledgeGraph("toy", t, t[:2], t[:1], E, R)


triple_lists = st.integers(2, 6).flatmap(
    lambda E: st.integers(1, 3).flatmap(
        lambda R: st.tuples(
            st.just(E), st.just(R),
            st.lists(st.tuples(st.integers(0, E - 1), st.integers(0, R - 1), st.integers(0, E - 1)),
                     min_size=1, max_size=40),
        )
    )
)


@settings(max_examples=60, deadline=None)
@given(triple_lists)
def test_statistics_match_naive_reference(data):
    E, R, triples = data
    g = _graph(triples, E, R)
    s = g.stats
    for e in range(E):
        assert s.out_degree[e] == sum(1 for h, _, _ in triples if h == e)
        assert s.in_degree[e] == sum(1 for _, _, t in triples if t == e)
    for r in range(R):
        assert s.relation_frequency[r] == sum(1 for _, x, _ in triples if x == r)
        uniq = {(h, t) for h, x, t in triples if x == r}
        heads = {h for h, _ in uniq}
        tails = {t for _, t in uniq}
        tph = len(uniq) / len(heads) if heads else 0.0
        hpt = len(uniq) / len(tails) if tails else 0.0
        want = ("1-1", "1-N", "N-1", "N-N")[(tph >= 1.5) + 2 * (hpt >= 1.5)]
        assert CATEGORY_NAMES[int(s.relation_category[r])] == want
        assert abs(float(s.tails_per_head[r]) - tph) < 1e-5
    assert s.duplicates["train"] == len(triples) - len(set(triples))


@settings(max_examples=60, deadline=None)
@given(triple_lists)
def test_filter_index_matches_sets(data):
    E, R, triples = data
    idx = FilterIndex.build(torch.tensor(triples).view(-1, 3), E, R)
    queries = list(itertools.product(range(E), range(R)))
    q = torch.tensor(queries)
    rows, ents = idx.tails(q[:, 0], q[:, 1])
    got = {(queries[i], e) for i, e in zip(rows.tolist(), ents.tolist())}
    want = {((h, r), t) for h, r, t in triples}
    assert got == want
    rows, ents = idx.heads(q[:, 1], q[:, 0])
    got = {((queries[i][1], queries[i][0]), e) for i, e in zip(rows.tolist(), ents.tolist())}
    want = {((r, t), h) for h, r, t in triples}
    assert got == want
