import math

import pytest
import torch

from metasd_pyg.pruning import (
    apply_masks,
    count_nonzero,
    mask_churn,
    mask_density,
    target_count,
)


def test_apply_masks_exact_zeros_and_zero_gradients():
    w = torch.randn(5, 4, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    mask = torch.rand(5, 4) > 0.5
    out = apply_masks({"w": w, "b": b}, {"w": mask})
    assert out["b"] is b  # passes through
    assert torch.equal(out["w"][~mask], torch.zeros(int((~mask).sum())))
    assert torch.equal(out["w"][mask], w[mask])
    (out["w"] * torch.randn(5, 4)).sum().backward()
    assert torch.equal(w.grad[~mask], torch.zeros(int((~mask).sum())))
    assert bool((w.grad[mask] != 0).all())


def test_apply_masks_zero_even_for_nonfinite_weights():
    w = torch.tensor([[math.inf, math.nan, 1.0]], requires_grad=True)
    mask = torch.tensor([[False, False, True]])
    out = apply_masks({"w": w}, {"w": mask})["w"]
    assert torch.equal(out, torch.tensor([[0.0, 0.0, 1.0]]))
    out.sum().backward()
    assert torch.equal(w.grad, torch.tensor([[0.0, 0.0, 1.0]]))


def test_apply_masks_shape_mismatch_and_missing_names():
    with pytest.raises(ValueError):
        apply_masks({"w": torch.ones(2, 2)}, {"w": torch.ones(2, 3, dtype=torch.bool)})
    out = apply_masks({"w": torch.ones(2)}, {"other": torch.zeros(3, dtype=torch.bool)})
    assert set(out) == {"w"}


def test_density_churn_count():
    a = {"x": torch.tensor([True, False, True, False]), "y": torch.tensor([[True, True]])}
    b = {"x": torch.tensor([True, True, False, False]), "y": torch.tensor([[True, False]])}
    assert mask_density(a) == pytest.approx(4 / 6)
    assert mask_density({}) == 1.0
    assert mask_churn(a, b) == pytest.approx(3 / 6)
    assert mask_churn(a, a) == 0.0
    with pytest.raises(ValueError):
        mask_churn(a, {"x": a["x"]})
    assert count_nonzero({"x": torch.tensor([0.0, 1.0, -2.0]), "y": torch.zeros(3)}) == 2
    assert count_nonzero(torch.tensor([0.0, 3.0])) == 1


def test_target_count_rounds_half_up_and_clips():
    assert target_count(10, 0.25) == 3  # 2.5 -> 3
    assert target_count(10, 0.0) == 0
    assert target_count(10, 1.0) == 10
    assert target_count(1000, 0.1) == 100
