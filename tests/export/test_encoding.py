import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metasd_pyg.export import decode_table, encode_table, prefix_structure


def _nested_reference(mask):
    """Naive: rows are nested prefixes of one order iff kept sets form a chain."""
    sets = [set(torch.nonzero(row).flatten().tolist()) for row in mask]
    return all(a <= b or b <= a for a in sets for b in sets)


@st.composite
def masks(draw):
    n = draw(st.integers(1, 7))
    d = draw(st.integers(1, 9))
    kind = draw(st.sampled_from(["random", "nested", "aligned"]))
    seed = draw(st.integers(0, 10_000))
    g = torch.Generator().manual_seed(seed)
    if kind == "random":
        return torch.rand(n, d, generator=g) < draw(st.floats(0.0, 1.0))
    order = torch.randperm(d, generator=g)
    if kind == "aligned":
        k = torch.full((n,), draw(st.integers(0, d)))
    else:
        k = torch.randint(0, d + 1, (n,), generator=g)
    mask = torch.zeros(n, d, dtype=torch.bool)
    for i in range(n):
        mask[i, order[: k[i]]] = True
    return mask


@settings(max_examples=80, deadline=None)
@given(masks(), st.sampled_from([None, "dense", "csr", "prefix"]))
def test_round_trip_and_prefix_detection(mask, encoding):
    w = torch.randn(mask.shape)
    enc = encode_table(w, mask, encoding=encoding)
    out = decode_table(enc.encoding, enc.shape, enc.tensors)
    assert torch.equal(out, w * mask)
    assert enc.nnz == int(mask.sum())
    structure = prefix_structure(mask)
    assert (structure is not None) == _nested_reference(mask)
    if structure is not None:
        order, k = structure
        for i in range(mask.size(0)):
            assert set(order[: k[i]].tolist()) == set(torch.nonzero(mask[i]).flatten().tolist())
    if encoding == "prefix" and structure is None:
        assert enc.encoding == "csr"


def test_smallest_encoding_is_chosen_and_index_width():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(50, 300, generator=g)
    dense = encode_table(w, torch.ones_like(w, dtype=torch.bool))
    assert dense.encoding == "dense"
    sparse = encode_table(w, torch.rand(50, 300, generator=g) < 0.1)
    assert sparse.encoding == "csr"
    assert sparse.tensors["indices"].dtype == torch.uint16  # 300 columns
    assert encode_table(w[:, :200], torch.rand(50, 200, generator=g) < 0.1).tensors[
        "indices"].dtype == torch.uint8
    nested = torch.arange(300)[None, :] < torch.randint(0, 60, (50, 1), generator=g)
    enc = encode_table(w, nested[:, torch.randperm(300, generator=g)])
    assert enc.encoding == "prefix"
    assert "indices" not in enc.tensors
    half = encode_table(w, nested, dtype=torch.float16)
    assert half.tensors["values"].dtype == torch.float16
