import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metasd_pyg.pruning.select import random_score, select_top


def _reference(tables, n):
    """Brute force: sort (-|w|, table, position) lexicographically."""
    keys = []
    for i, t in enumerate(tables):
        for j, v in enumerate(t.reshape(-1).abs().tolist()):
            keys.append((-v, i, j))
    keep = set(map(lambda k: (k[1], k[2]), sorted(keys)[:n]))
    return [
        torch.tensor([(i, j) in keep for j in range(t.numel())]).view(t.shape)
        for i, t in enumerate(tables)
    ]


@settings(max_examples=40, deadline=None)
@given(
    shapes=st.lists(st.tuples(st.integers(1, 6), st.integers(1, 5)), min_size=1, max_size=3),
    frac=st.floats(0, 1),
    levels=st.integers(1, 6),
    chunk=st.sampled_from([3, 7, 1 << 22]),
    seed=st.integers(0, 10),
)
def test_select_top_matches_brute_force_with_ties(shapes, frac, levels, chunk, seed):
    g = torch.Generator().manual_seed(seed)
    # few distinct levels -> many ties; signs mixed; includes zeros
    tables = [(torch.randint(-levels, levels + 1, s, generator=g) / 3.0) for s in shapes]
    total = sum(t.numel() for t in tables)
    n = round(frac * total)
    got = select_top(tables, n, chunk=chunk)
    want = _reference(tables, n)
    assert sum(int(m.sum()) for m in got) == n
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def test_select_top_float_precision_neighbours():
    base = torch.tensor(1.0)
    vals = torch.stack([base, torch.nextafter(base, torch.tensor(2.0)), base * 0.5, base])
    got = select_top([vals], 1)[0]
    assert got.tolist() == [False, True, False, False]
    got = select_top([vals], 2)[0]
    assert got.tolist() == [True, True, False, False]


def test_random_score_deterministic_excluding():
    t = torch.zeros(4, 5)
    ex = torch.zeros(4, 5, dtype=torch.bool)
    ex[0] = True
    a = select_top([t], 6, random_score(3, [ex]), chunk=4)[0]
    b = select_top([t], 6, random_score(3, [ex]), chunk=4)[0]
    c = select_top([t], 6, random_score(4, [ex]), chunk=4)[0]
    assert torch.equal(a, b)
    assert int(a.sum()) == 6 and not bool(a[0].any())
    assert not torch.equal(a, c)
