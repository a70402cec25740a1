import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metasd_pyg.pruning import row_topk_mask, split_budget


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 8),
    d=st.integers(1, 6),
    frac=st.floats(0, 1),
    chunk=st.sampled_from([4, 1 << 22]),
    seed=st.integers(0, 5),
)
def test_row_topk_exact_and_topk_per_row(rows, d, frac, chunk, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, d, generator=g)
    n = round(frac * rows * d)
    m = row_topk_mask(w, n, chunk=chunk)
    assert int(m.sum()) == n
    per_row = m.sum(1)
    assert int(per_row.max() - per_row.min()) <= 1
    for i in range(rows):  # naive reference per row
        k = int(per_row[i])
        want = set(torch.argsort(w[i].abs(), descending=True)[:k].tolist())
        assert set(m[i].nonzero().flatten().tolist()) == want
    k = n // rows
    if 0 < n % rows and k < d:  # extra units go to rows with the largest (k+1)-th value
        nxt = torch.sort(w.abs(), dim=1, descending=True).values[:, k]
        assert nxt[per_row == k + 1].min() >= nxt[per_row == k].max()


@settings(max_examples=50, deadline=None)
@given(sizes=st.lists(st.integers(0, 50), min_size=1, max_size=5), frac=st.floats(0, 1))
def test_split_budget(sizes, frac):
    n = round(frac * sum(sizes))
    parts = split_budget(n, sizes)
    assert sum(parts) == n
    total = sum(sizes)
    for p, s in zip(parts, sizes):
        assert 0 <= p <= s
        if total:
            assert abs(p - n * s / total) < 1
