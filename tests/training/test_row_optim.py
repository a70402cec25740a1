"""RowAdagrad against torch's Adagrad: the same update, state and checkpoints."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metasd_pyg.training.optim import OptimConfig, make_optimizer
from metasd_pyg.training.row_optim import RowAdagrad


def _row_grad(rows: torch.Tensor, values: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return torch.sparse_coo_tensor(rows.unsqueeze(0), values, shape, is_coalesced=True,
                                   check_invariants=False)


def _run(opt_cls: type[torch.optim.Optimizer], w: torch.Tensor, grads: list[torch.Tensor],
         **kw: float) -> tuple[torch.Tensor, torch.optim.Optimizer]:
    p = w.clone().requires_grad_(True)
    opt = opt_cls([p], **kw)
    for g in grads:
        p.grad = g
        opt.step()
    return p.detach(), opt


@settings(max_examples=25, deadline=None)
@given(num=st.integers(1, 40), dim=st.integers(1, 6), steps=st.integers(1, 6),
       lr_decay=st.sampled_from([0.0, 0.05]), init=st.sampled_from([0.0, 0.3]),
       seed=st.integers(0, 2**16))
def test_sparse_steps_equal_torch_adagrad(num: int, dim: int, steps: int,
                                                      lr_decay: float, init: float,
                                                      seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(num, dim, generator=gen)
    grads = []
    for _ in range(steps):
        rows = torch.randperm(num, generator=gen)[: int(torch.randint(0, num + 1, (1,),
                                                                         generator=gen))]
        rows = rows.sort().values
        grads.append(_row_grad(rows, torch.randn(rows.numel(), dim, generator=gen), w.shape))
    kw = dict(lr=0.3, lr_decay=lr_decay, initial_accumulator_value=init, eps=1e-10)
    ref, ref_opt = _run(torch.optim.Adagrad, w, grads, **kw)
    out, opt = _run(RowAdagrad, w, grads, **kw)
    # to rounding: RowAdagrad scales the step before adding it (torch in the addition)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    ref_state, state = next(iter(ref_opt.state.values())), next(iter(opt.state.values()))
    assert torch.equal(state["sum"], ref_state["sum"])  # the accumulator: to the bit
    assert float(state["step"]) == float(ref_state["step"]) == steps


def test_untouched_rows_and_their_state_do_not_move() -> None:
    w = torch.randn(10, 3)
    g = _row_grad(torch.tensor([2, 7]), torch.ones(2, 3), w.shape)
    out, opt = _run(RowAdagrad, w, [g], lr=0.1)
    moved = (out != w).any(1)
    assert moved.tolist() == [i in (2, 7) for i in range(10)]
    assert (next(iter(opt.state.values()))["sum"][~moved] == 0).all()


def test_dense_gradients_take_the_dense_update() -> None:
    w = torch.randn(6, 4)
    grads = [torch.randn(6, 4) for _ in range(3)]
    ref, _ = _run(torch.optim.Adagrad, w, grads, lr=0.2, weight_decay=0.01, foreach=False)
    out, _ = _run(RowAdagrad, w, grads, lr=0.2, weight_decay=0.01)
    torch.testing.assert_close(out, ref)


def test_checkpoints_load_across_the_two_classes() -> None:
    w = torch.randn(20, 4)
    g = [_row_grad(torch.tensor([1, 5, 9]), torch.randn(3, 4), w.shape) for _ in range(4)]
    # two steps with torch's Adagrad, its state into RowAdagrad, two more steps
    p = w.clone().requires_grad_(True)
    first = torch.optim.Adagrad([p], lr=0.1)
    for grad in g[:2]:
        p.grad = grad
        first.step()
    second = RowAdagrad([p], lr=0.1)
    second.load_state_dict(first.state_dict())
    for grad in g[2:]:
        p.grad = grad
        second.step()
    ref, _ = _run(torch.optim.Adagrad, w, g, lr=0.1)
    torch.testing.assert_close(p.detach(), ref, rtol=1e-6, atol=1e-6)


def test_weight_decay_is_refused_with_sparse_gradients() -> None:
    w = torch.randn(5, 2)
    with pytest.raises(RuntimeError, match="weight_decay"):
        _run(RowAdagrad, w, [_row_grad(torch.tensor([0]), torch.ones(1, 2), w.shape)],
             lr=0.1, weight_decay=0.1)


def test_the_row_wise_engine_gets_row_adagrad_and_reports_adagrad() -> None:
    p = [torch.nn.Parameter(torch.zeros(3, 2))]
    opt = make_optimizer("adagrad", p, 0.1, sparse=True)
    assert type(opt) is RowAdagrad
    assert OptimConfig.of(opt) == OptimConfig(optimizer="adagrad", lr=0.1)
    assert type(make_optimizer("adagrad", p, 0.1)) is torch.optim.Adagrad


def test_a_gradient_of_every_row_takes_the_dense_update() -> None:
    """The relation tables' gradients cover every row: the whole-table path, same result."""
    w = torch.randn(7, 3)
    grads = [_row_grad(torch.arange(7), torch.randn(7, 3), w.shape) for _ in range(3)]
    ref, _ = _run(torch.optim.Adagrad, w, grads, lr=0.2)
    out, _ = _run(RowAdagrad, w, grads, lr=0.2)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["adagrad", "adam"])
def test_dense_optimisers_take_the_fused_update_with_the_same_result(name: str) -> None:
    """make_optimizer builds torch's fused optimiser for dense gradients on the CPU; a few
    steps give the default (for-loop) optimiser's parameters."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(30, 5, generator=gen)
    grads = [torch.randn(30, 5, generator=gen) for _ in range(4)]
    opt_cls = torch.optim.Adagrad if name == "adagrad" else torch.optim.Adam
    ref, _ = _run(opt_cls, w, grads, lr=0.1, foreach=False)  # type: ignore[arg-type]
    p = w.clone().requires_grad_(True)
    opt = make_optimizer(name, [p], 0.1)
    assert opt.param_groups[0]["fused"] is True
    for g in grads:
        p.grad = g
        opt.step()
    torch.testing.assert_close(p.detach(), ref, rtol=1e-6, atol=1e-7)
    sparse = make_optimizer(name, [w.clone().requires_grad_(True)], 0.1, sparse=True)
    assert not sparse.param_groups[0].get("fused")  # the row-wise classes take no fused flag
