"""The meta-gradient against central finite differences (float64, tiny ComplEx), both paths."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from metasd_pyg.models.factory import build_model
from metasd_pyg.pruning.masks import apply_masks
from metasd_pyg.training.losses import (
    KLWeights,
    distillation_loss,
    entity_cross_entropy,
    regularizer,
    tail_logits,
)
from metasd_pyg.training.meta import meta_gradient, sample_quiz
from metasd_pyg.training.objective import StudentLoss

E, R, D = 6, 2, 3
ALPHA, TAU, REG = 0.5, 2.0, 0.05
#: The student's loss weights in these tests (a_S, lambda_S): not 1, so a dropped weight shows.
A_S, LAM_S = 2.0, 0.7
STUDENT = StudentLoss(temperature=TAU, kl=KLWeights(3.0, 1.0), distill_scale=LAM_S, weight=A_S,
                      regularizer="dura", regularizer_weight=REG)


def _setup(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, dict]:
    torch.manual_seed(seed)
    model = build_model("complex", E, R, D).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    g = torch.Generator().manual_seed(seed)
    masks = {n: torch.rand(p.shape, generator=g) < 0.6 for n, p in model.named_parameters()}
    batch = torch.tensor([[0, 0, 1], [2, 1, 3], [4, 3, 5], [1, 2, 0]])
    quiz = torch.tensor([[5, 0, 2], [3, 3, 4], [0, 1, 1]])
    return model, batch, quiz, masks


def _reference_quiz_loss(model: torch.nn.Module, theta_t: dict, theta_s: dict, batch: torch.Tensor,
               quiz: torch.Tensor, masks: dict, scale: float = 1.0) -> torch.Tensor:
    """F(theta_T, theta_S): quiz loss of the student after one virtual step (reference; the
    student's logits are ``scale`` times the masked model's scores)."""
    leaves = {n: v.detach().clone().requires_grad_(True) for n, v in theta_s.items()}
    view = apply_masks(leaves, masks)
    z_t = tail_logits(model, batch, theta_t)
    z_s = scale * tail_logits(model, batch, view)
    # the student's real loss: a_S [CE + lambda_S (3 KL(S||T) + KL(T||S)) + DURA]
    lv = entity_cross_entropy(z_s, batch[:, 2]) + regularizer("dura", model, batch, REG, view)
    lv = A_S * (lv + LAM_S * distillation_loss(z_s, z_t, TAU, KLWeights(3.0, 1.0)))
    grads = torch.autograd.grad(lv, list(leaves.values()))
    virtual = {n: theta_s[n] - ALPHA * g for n, g in zip(leaves, grads)}
    quiz_logits = scale * tail_logits(model, quiz, apply_masks(virtual, masks))
    return entity_cross_entropy(quiz_logits, quiz[:, 2])


@pytest.mark.parametrize(("path", "scale"), [("official", 1.0), ("full", 1.0), ("full", 2.0)])
def test_meta_gradient_matches_finite_differences(path: str, scale: float) -> None:
    model, batch, quiz, masks = _setup()
    student = dataclasses.replace(STUDENT, logit_scale=scale)
    grads, lq = meta_gradient(model, batch, quiz, masks, path=path, virtual_lr=ALPHA,
                              student=student)
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}

    def _quiz_loss(*args: Any) -> torch.Tensor:
        return _reference_quiz_loss(*args, scale=scale)

    assert lq.item() == pytest.approx(_quiz_loss(model, theta, theta, batch, quiz, masks).item())
    eps = 1e-6
    checked = 0
    pick = torch.Generator().manual_seed(3)
    for name, p in theta.items():  # 6 random coordinates of every table
        for idx in torch.randperm(p.numel(), generator=pick)[:6].tolist():
            plus = {n: v.clone() for n, v in theta.items()}
            minus = {n: v.clone() for n, v in theta.items()}
            plus[name].view(-1)[idx] += eps
            minus[name].view(-1)[idx] -= eps
            if path == "official":  # perturb the teacher role only
                fp = _quiz_loss(model, plus, theta, batch, quiz, masks)
                fm = _quiz_loss(model, minus, theta, batch, quiz, masks)
            else:  # perturb the shared parameters in both roles
                fp = _quiz_loss(model, plus, plus, batch, quiz, masks)
                fm = _quiz_loss(model, minus, minus, batch, quiz, masks)
            fd = (fp - fm).item() / (2 * eps)
            got = grads[name].view(-1)[idx].item()
            assert got == pytest.approx(fd, rel=1e-5, abs=1e-8), (name, idx)
            checked += 1
    assert checked == 6 * len(theta)


def test_paths_differ_and_official_is_nonzero() -> None:
    model, batch, quiz, masks = _setup(1)
    g_off, _ = meta_gradient(model, batch, quiz, masks, path="official", virtual_lr=ALPHA)
    g_full, _ = meta_gradient(model, batch, quiz, masks, path="full", virtual_lr=ALPHA)
    off = torch.cat([g.flatten() for g in g_off.values()])
    full = torch.cat([g.flatten() for g in g_full.values()])
    assert off.abs().sum() > 0
    assert not torch.allclose(off, full)


def test_meta_gradient_reuses_precomputed_forwards() -> None:
    model, batch, quiz, masks = _setup(2)
    params = dict(model.named_parameters())
    leaves = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
    z_t = tail_logits(model, batch)
    z_s = tail_logits(model, batch, apply_masks(leaves, masks))
    a, _ = meta_gradient(model, batch, quiz, masks, teacher_logits=z_t, student_leaves=leaves,
                         student_logits=z_s, retain_graph=True)
    b, _ = meta_gradient(model, batch, quiz, masks)
    for n in a:
        assert torch.allclose(a[n], b[n])
    z_t.sum().backward()  # the graph was retained for the trainer's own backward pass


def test_sample_quiz_draws_from_slice() -> None:
    quiz = torch.arange(30).view(10, 3)
    out = sample_quiz(quiz, 4, torch.Generator().manual_seed(0))
    assert out.shape == (4, 3)
    rows = {tuple(r) for r in quiz.tolist()}
    assert all(tuple(r) in rows for r in out.tolist())
    assert len({tuple(r) for r in out.tolist()}) == 4
    assert torch.equal(sample_quiz(quiz, 50, torch.Generator()), quiz)


def test_student_logit_grad_matches_autograd_of_the_student_loss() -> None:
    g = torch.Generator().manual_seed(4)
    zt = torch.randn(5, 7, generator=g, dtype=torch.float64) * 3
    zs = (torch.randn(5, 7, generator=g, dtype=torch.float64) * 3).requires_grad_(True)
    target = torch.randint(7, (5,), generator=g)
    loss = A_S * (entity_cross_entropy(zs, target)
                  + LAM_S * distillation_loss(zs, zt, TAU, KLWeights(3.0, 1.0)))
    (ref,) = torch.autograd.grad(loss, zs)
    got = STUDENT.logit_grad(zt, zs, target)
    assert torch.allclose(got, ref, rtol=1e-10, atol=1e-13)
