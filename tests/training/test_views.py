"""Compact student scoring: same logits, gradients and trajectory as the full masked view."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from metasd_pyg.models.factory import build_model
from metasd_pyg.pruning import Pruner
from metasd_pyg.training.config import MetaSDConfig
from metasd_pyg.training.losses import tail_logits
from metasd_pyg.training.meta import meta_gradient
from metasd_pyg.training.objective import StudentLoss
from metasd_pyg.training.recipes import compose
from metasd_pyg.training.views import active_units, compact_view, student_weights

from .helpers import toy_graph

E, R, D = 9, 3, 8


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, E, R, D).double()


def _masks(model: torch.nn.Module, empty: list[int], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random masks with the columns ``empty`` dropped from every entity row."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for n, p in model.named_parameters():
        m = torch.rand(p.shape, generator=g) < 0.6
        if n.startswith("node_emb"):
            m[:, empty] = False
        out[n] = m
    return out


def test_active_units_are_the_columns_some_entity_keeps() -> None:
    model = _model("complex")
    masks = _masks(model, [1, 4, 5])
    units = active_units(model, masks)
    assert units is not None
    used = torch.zeros(D, dtype=torch.bool)
    for n in ("node_emb.weight", "node_emb_im.weight"):  # naive: loop over columns
        for j in range(D):
            used[j] |= bool(masks[n][:, j].any())
    assert units.tolist() == [j for j in range(D) if used[j]]
    assert 1 not in units.tolist() and 4 not in units.tolist()


def test_active_units_none_for_distance_models_and_full_masks() -> None:
    transe = _model("transe")
    assert active_units(transe, _masks(transe, [0, 1])) is None
    model = _model("complex")
    full = {n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters()}
    assert active_units(model, full) is None


def test_nested_masks_with_k_max_compact_to_k_max_columns() -> None:
    model = _model("complex")
    degree = torch.arange(E, dtype=torch.float) ** 2
    pruner = Pruner("degree", 0.75, k_max=3)
    masks = pruner.compute(model, degree=degree)
    units = active_units(model, masks)
    assert pruner.last_order is not None and pruner.last_k is not None
    longest = int(pruner.last_k["entity"].max())
    assert 0 < longest <= 3
    assert units is not None
    assert sorted(pruner.last_order[:longest].tolist()) == units.tolist()


@pytest.mark.parametrize("name", ["complex", "distmult"])
def test_compact_logits_and_gradients_equal_full_view(name: str) -> None:
    model = _model(name)
    masks = _masks(model, [0, 3, 6, 7], seed=1)
    units = active_units(model, masks)
    assert units is not None and units.numel() == D - 4
    batch = torch.tensor([[0, 1, 2], [3, 0, 4], [8, 2, 5], [6, 5, 1]])
    params = dict(model.named_parameters())
    view = student_weights(params, masks)
    full = tail_logits(model, batch, view)
    small = tail_logits(model, batch, compact_view(view, masks, units))
    torch.testing.assert_close(small, full)
    w = torch.randn_like(full)
    g_full = torch.autograd.grad((full * w).sum(), list(params.values()), retain_graph=True)
    g_small = torch.autograd.grad((small * w).sum(), list(params.values()))
    for a, b in zip(g_small, g_full):
        torch.testing.assert_close(a, b)


def test_meta_gradient_is_the_same_with_units() -> None:
    model = _model("complex")
    masks = _masks(model, [2, 5], seed=2)
    units = active_units(model, masks)
    batch = torch.tensor([[0, 1, 2], [3, 0, 4], [8, 2, 5]])
    quiz = torch.tensor([[1, 1, 7], [4, 2, 0]])
    kw: dict[str, Any] = dict(student=StudentLoss(regularizer_weight=0.05), path="full")
    ref, lq_ref = meta_gradient(model, batch, quiz, masks, **kw)
    got, lq = meta_gradient(model, batch, quiz, masks, units=units, **kw)
    torch.testing.assert_close(lq, lq_ref)
    for n in ref:
        torch.testing.assert_close(got[n], ref[n])


@pytest.mark.parametrize("strategy", ["aligned", "degree"])
def test_trainer_trajectory_does_not_depend_on_compaction(strategy: str) -> None:
    results = []
    units = []
    for compact in (True, False):
        cfg = MetaSDConfig.flat(dim=8, epochs=2, batch_size=16, eval_every=1, progress=False,
                                meta_every=1, quiz_fraction=0.1, quiz_batch_size=8, seed=3,
                                device="cpu", sparsity=0.75, strategy=strategy, k_max=4,
                                compact_student=compact)
        tr = compose(toy_graph(n=120), cfg)  # the library evaluator, compact weights
        results.append(tr.fit())
        units.append(tr.units)
    assert units[0] is not None and units[0].numel() <= 4 and units[1] is None
    for a, b in zip(results[0].history, results[1].history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    assert results[0].final_test.summary["mrr"] == pytest.approx(
        results[1].final_test.summary["mrr"], abs=1e-6)
