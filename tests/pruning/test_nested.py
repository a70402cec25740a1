import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metasd_pyg.pruning import NestedMasks, allocate_prefix_lengths


@settings(max_examples=60, deadline=None)
@given(
    degrees=st.lists(st.integers(0, 1000), min_size=1, max_size=30),
    alpha=st.floats(0.0, 2.0),
    d=st.integers(1, 12),
    k_min=st.integers(0, 3),
    frac=st.floats(0, 1),
)
def test_allocation_exact_clipped_monotone(degrees, alpha, d, k_min, frac):
    k_min = min(k_min, d)
    deg = torch.tensor(degrees)
    v = (deg.double() + 1) ** alpha
    rows = deg.numel()
    budget = rows * k_min + round(frac * rows * (d - k_min))
    k = allocate_prefix_lengths(
        v, budget, k_min=k_min, k_max=d, tie_keys=lambda k: [-deg.double()]
    )
    assert int(k.sum()) == budget
    assert int(k.min()) >= k_min and int(k.max()) <= d
    # monotone: higher degree never gets fewer units (alpha > 0)
    if alpha > 0:
        order = torch.argsort(deg)
        ks, ds = k[order], deg[order]
        bad = (ds[1:] > ds[:-1]) & (ks[1:] < ks[:-1])
        assert not bool(bad.any())


def test_allocation_proportional_to_value():
    v = torch.tensor([1.0, 2.0, 4.0, 8.0])
    k = allocate_prefix_lengths(v, 15, k_min=0, k_max=100)
    assert k.tolist() == [1, 2, 4, 8]


def test_allocation_rejects_infeasible_budget():
    with pytest.raises(ValueError):
        allocate_prefix_lengths(torch.ones(3), 2, k_min=1, k_max=4)


def _nested():
    order = torch.tensor([2, 0, 3, 1])
    return NestedMasks(
        order=order,
        k={"entity": torch.tensor([0, 1, 3, 4]), "relation": torch.tensor([2, 4])},
        tables={"entity": ("a", "a_im"), "relation": ("r",)},
    )


def test_to_masks_prefix_property_and_counts():
    nm = _nested()
    masks = nm.to_masks()
    assert torch.equal(masks["a"], masks["a_im"])
    assert masks["a"].data_ptr() != masks["a_im"].data_ptr()
    assert masks["a"][2].tolist() == [True, False, True, True]  # units 2, 0, 3
    ent = masks["a"]
    for a in range(4):
        for b in range(4):
            m = min(int(nm.k["entity"][a]), int(nm.k["entity"][b]))
            shared = nm.order[:m]
            assert bool(ent[a, shared].all() and ent[b, shared].all())
    assert nm.count() == 2 * 8 + 6 == sum(int(m.sum()) for m in masks.values())
    assert nm.total() == 2 * 16 + 8
    assert nm.density() == pytest.approx(22 / 40)


def test_pack_unpack_roundtrip_without_column_indices():
    nm = _nested()
    w = {"a": torch.randn(4, 4), "a_im": torch.randn(4, 4), "r": torch.randn(2, 4)}
    packed = nm.pack(w)
    assert packed["a"].numel() == 8 and packed["r"].numel() == 6
    off = nm.offsets("entity")
    assert off.tolist() == [0, 0, 1, 4, 8]
    # row 2 holds its first 3 units in `order` order
    assert torch.equal(packed["a"][off[2] : off[3]], w["a"][2, nm.order[:3]])
    dense = nm.unpack(packed)
    masks = nm.to_masks()
    for name in w:
        assert torch.equal(dense[name], torch.where(masks[name], w[name], 0.0))
