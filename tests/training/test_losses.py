"""Losses against naive references (loops over rows / coordinates) on tiny inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from metasd_pyg.errors import ConfigError
from metasd_pyg.models.factory import build_model
from metasd_pyg.models.scoring import score_triples
from metasd_pyg.pruning.masks import apply_masks
from metasd_pyg.training.losses import (
    KLWeights,
    MutualWeights,
    distillation_loss,
    dura,
    entity_cross_entropy,
    fused_cross_entropy,
    kl_divergence,
    mutual_logit_loss,
    n3,
    reciprocal_triples,
    regularizer,
    relation_cross_entropy,
    sample_candidates,
    sampled_cross_entropy,
    tail_logits,
)

E, R, D = 7, 3, 4


def _model(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(name, E, R, D).double()


def _batch(seed: int, n: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    cols = [torch.randint(k, (n,), generator=g) for k in (E, 2 * R, E)]
    return torch.stack(cols, 1)


def test_reciprocal_triples() -> None:
    t = torch.tensor([[0, 1, 2], [3, 0, 4]])
    out = reciprocal_triples(t, 5)
    assert out.tolist() == [[0, 1, 2], [3, 0, 4], [2, 6, 0], [4, 5, 3]]


@pytest.mark.parametrize("name", ["complex", "distmult", "rotate", "transe"])
def test_one_to_n_cross_entropy_matches_loop(name: str) -> None:
    model = _model(name)
    batch = _batch(1)
    logits = tail_logits(model, batch)
    got = entity_cross_entropy(logits, batch[:, 2])
    ref = 0.0
    with torch.no_grad():
        for h, r, t in batch.tolist():
            s = torch.stack([score_triples(model, torch.tensor([h]), torch.tensor([r]),
                                           torch.tensor([e]))[0] for e in range(E)])
            ref += -(s[t] - torch.logsumexp(s, 0)).item()
    assert got.item() == pytest.approx(ref / len(batch), rel=1e-9)


def test_sampled_candidates_and_loss() -> None:
    model = _model("complex")
    batch = _batch(2, 6)
    cand, target = sample_candidates(batch, E, 4, torch.Generator().manual_seed(0))
    assert cand.unique().numel() == cand.numel()  # no duplicate candidates
    assert torch.equal(cand[target], batch[:, 2])
    got = sampled_cross_entropy(model, batch, cand, target)
    ref = 0.0
    with torch.no_grad():
        for i, (h, r, _) in enumerate(batch.tolist()):
            s = torch.stack([score_triples(model, torch.tensor([h]), torch.tensor([r]),
                                           torch.tensor([int(e)]))[0] for e in cand])
            ref += -(s[target[i]] - torch.logsumexp(s, 0)).item()
    assert got.item() == pytest.approx(ref / len(batch), rel=1e-9)


@pytest.mark.parametrize("name", ["complex", "distmult", "transe"])
def test_relation_prediction_matches_loop(name: str) -> None:
    model = _model(name)
    batch = _batch(3)
    got = relation_cross_entropy(model, batch)
    ref = 0.0
    with torch.no_grad():
        for h, r, t in batch.tolist():
            s = torch.stack([score_triples(model, torch.tensor([h]), torch.tensor([q]),
                                           torch.tensor([t]))[0] for q in range(2 * R)])
            ref += -(s[r] - torch.logsumexp(s, 0)).item()
    assert got.item() == pytest.approx(ref / len(batch), rel=1e-9)


def _complex_rows(model: torch.nn.Module, batch: torch.Tensor) -> list[tuple[list[complex], ...]]:
    ent = torch.complex(model.node_emb.weight, model.node_emb_im.weight).detach()
    rel = torch.complex(model.rel_emb.weight, model.rel_emb_im.weight).detach()
    return [(ent[h].tolist(), rel[r].tolist(), ent[t].tolist()) for h, r, t in batch.tolist()]


def test_dura_complex_matches_definition() -> None:
    model = _model("complex")
    batch = _batch(4)
    lam = 0.3
    ref = 0.0
    for h, r, t in _complex_rows(model, batch):
        for hk, rk, tk in zip(h, r, t):
            # ||h o r||^2 + ||t o conj(r)||^2 weighted 1.5, ||h||^2 + ||t||^2 weighted 0.5
            ref += 0.5 * (abs(hk) ** 2 + abs(tk) ** 2)
            ref += 1.5 * (abs(hk * rk) ** 2 + abs(tk * rk.conjugate()) ** 2)
    got = dura(model, batch, lam)
    assert got.item() == pytest.approx(lam * ref / len(batch), rel=1e-9)


def test_n3_complex_matches_definition() -> None:
    model = _model("complex")
    batch = _batch(5)
    ref = sum(abs(x) ** 3 for row in _complex_rows(model, batch) for part in row for x in part)
    assert n3(model, batch, 0.2).item() == pytest.approx(0.2 * ref / len(batch), rel=1e-9)


def test_n3_distmult_and_dura_rejects_distance_models() -> None:
    model = _model("distmult")
    batch = _batch(6)
    ent, rel = model.node_emb.weight.detach(), model.rel_emb.weight.detach()
    ref = sum(float((ent[h].abs() ** 3).sum() + (rel[r].abs() ** 3).sum()
                    + (ent[t].abs() ** 3).sum()) for h, r, t in batch.tolist())
    assert n3(model, batch, 1.0).item() == pytest.approx(ref / len(batch), rel=1e-9)
    with pytest.raises(ConfigError):
        dura(_model("transe"), batch, 1.0)
    with pytest.raises(ConfigError):
        regularizer("l7", model, batch, 1.0)
    assert regularizer("none", model, batch, 1.0).item() == 0.0


@pytest.mark.parametrize("reg", ["dura", "n3"])
@pytest.mark.parametrize("name", ["complex", "distmult", "rotate"])
def test_regularisers_finite_at_masked_zeros(reg: str, name: str) -> None:
    if reg == "dura" and name == "rotate":
        pytest.skip("DURA is defined for bilinear models")
    model = _model(name)
    params = dict(model.named_parameters())
    masks = {n: torch.rand(p.shape, generator=torch.Generator().manual_seed(1)) < 0.3
             for n, p in params.items()}
    # whole rows and whole complex dimensions at zero too
    for m in masks.values():
        m[0] = False
        m[:, 1] = False
    view = apply_masks(params, masks)
    batch = torch.tensor([[0, 0, 0], [0, 1, 2], [3, 2, 0]])
    loss = regularizer(reg, model, batch, 0.5, view)
    loss = loss + entity_cross_entropy(tail_logits(model, batch, view), batch[:, 2])
    grads = torch.autograd.grad(loss, list(params.values()))
    for g, m in zip(grads, masks.values()):
        assert torch.isfinite(g).all()
        assert (g[~m] == 0).all()  # pruned coordinates get exactly zero gradient


def _naive_kl(p_logits: torch.Tensor, q_logits: torch.Tensor, tau: float) -> float:
    total = 0.0
    for a, b in zip(p_logits.tolist(), q_logits.tolist()):
        za = sum(math.exp(x / tau) for x in a)
        zb = sum(math.exp(x / tau) for x in b)
        for x, y in zip(a, b):
            p, q = math.exp(x / tau) / za, math.exp(y / tau) / zb
            total += p * math.log(p / q)
    return total / len(p_logits)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.5, 5.0), st.floats(0.0, 4.0), st.floats(0.0, 4.0))
def test_distillation_matches_naive_kl(seed: int, tau: float, w1: float, w2: float) -> None:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(3, 5, generator=g, dtype=torch.float64) * 3
    b = torch.randn(3, 5, generator=g, dtype=torch.float64) * 3
    ref = w1 * _naive_kl(a, b, tau) + w2 * _naive_kl(b, a, tau)
    got = distillation_loss(a, b, tau, KLWeights(w1, w2)).item()
    assert got == pytest.approx(ref, rel=1e-9, abs=1e-12)
    assert kl_divergence(a, b, tau).item() == pytest.approx(_naive_kl(a, b, tau), rel=1e-9)


def test_distillation_default_is_official_weighting() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    ref = 3 * kl_divergence(a, b, 3.0) + kl_divergence(b, a, 3.0)
    assert torch.allclose(distillation_loss(a, b), ref)


@pytest.mark.parametrize("name", ["rotate", "transe"])
def test_twice_differentiable_distance_scores_equal_cdist(name: str) -> None:
    model = _model(name)
    batch = _batch(7)
    a = tail_logits(model, batch)
    b = tail_logits(model, batch, twice_differentiable=True)
    assert torch.allclose(a, b, atol=1e-6)
    cand = torch.tensor([0, 3, 5])
    assert torch.allclose(tail_logits(model, batch, candidates=cand),
                          tail_logits(model, batch, candidates=cand, twice_differentiable=True),
                          atol=1e-6)
    (g,) = torch.autograd.grad(b.logsumexp(-1).sum(), model.node_emb.weight, create_graph=True)
    g.sum().backward()  # second order works


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000),
       st.one_of(st.floats(0.5, 4.0), st.sampled_from([1.0, 2.0, 3.0, 4.0, 5.0])),
       st.sampled_from([0.0, 0.6, 2.0]), st.sampled_from([0.0, 1.0, 1.3]), st.floats(0.5, 3.0),
       st.sampled_from([(3.0, 1.0), (1.0, 0.0), (0.0, 1.0)]),
       st.one_of(st.just(1.0), st.floats(0.2, 6.0)))
def test_fused_mutual_loss_equals_autograd_composition(
    seed: int, tau: float, lam_t: float, lam_s: float, a_s: float, kl: tuple[float, float],
    gamma: float,
) -> None:
    g = torch.Generator().manual_seed(seed)
    zt = (torch.randn(4, 9, generator=g, dtype=torch.float64) * 4).requires_grad_(True)
    zs = (torch.randn(4, 9, generator=g, dtype=torch.float64) * 4).requires_grad_(True)
    target = torch.randint(9, (4,), generator=g)
    w = KLWeights(*kl)
    ls = gamma * zs  # the student's logits in its loss
    ref = (entity_cross_entropy(zt, target) + lam_t * distillation_loss(zt, ls.detach(), tau, w)
           + a_s * (entity_cross_entropy(ls, target)
                    + lam_s * distillation_loss(ls, zt.detach(), tau, w)))
    ref_g = torch.autograd.grad(ref, [zt, zs])
    got = mutual_logit_loss(zt, zs, target,
                            MutualWeights(tau, w, lam_t, lam_s, 1.0, a_s, gamma))
    got_g = torch.autograd.grad(got * 1.7, [zt, zs])
    assert got.item() == pytest.approx(ref.item(), rel=1e-10)
    for a, b in zip(got_g, ref_g):
        assert torch.allclose(a, 1.7 * b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("gamma", [0.0, -2.0, float("nan")])
def test_fused_mutual_loss_refuses_a_logit_scale_that_is_not_positive(gamma: float) -> None:
    """The max shift of the scaled logits holds for gamma > 0 only: anything else is refused
    before a loss is computed."""
    z = torch.randn(3, 5, requires_grad=True)
    with pytest.raises(ValueError, match="student_logit_scale"):
        mutual_logit_loss(z, z, torch.tensor([0, 1, 2]), MutualWeights(student_logit_scale=gamma))


@pytest.mark.parametrize("tau", [1.0, 2.0, 3.0, 4.0, 2.5])
@pytest.mark.parametrize("spread", [1.0, 30.0, 300.0])
def test_fused_mutual_loss_in_float32_at_wide_logit_spreads(tau: float, spread: float) -> None:
    """Integer temperatures take the temperature-1 softmax as a power of the other; with
    logits hundreds apart (powers that underflow) the float32 loss and gradients stay those
    of the float64 autograd composition."""
    g = torch.Generator().manual_seed(int(tau * 10 + spread))
    zt = (torch.randn(16, 300, generator=g, dtype=torch.float64) * spread).requires_grad_(True)
    zs = (torch.randn(16, 300, generator=g, dtype=torch.float64) * spread).requires_grad_(True)
    target = torch.randint(300, (16,), generator=g)
    kl = KLWeights(3.0, 1.0)
    ls = 3.0 * zs  # the default student logit scale
    ref = (entity_cross_entropy(zt, target) + distillation_loss(zt, ls.detach(), tau, kl)
           + 3.0 * (entity_cross_entropy(ls, target)
                    + distillation_loss(ls, zt.detach(), tau, kl)))
    ref_t, ref_s = torch.autograd.grad(ref, [zt, zs])
    a = zt.detach().float().requires_grad_(True)
    b = zs.detach().float().requires_grad_(True)
    got = mutual_logit_loss(a, b, target, MutualWeights(tau, kl, 1.0, 1.0, 1.0, 3.0, 3.0))
    got_t, got_s = torch.autograd.grad(got, [a, b])
    assert torch.isfinite(got) and got.item() == pytest.approx(ref.item(), rel=1e-4)
    assert torch.allclose(got_t.double(), ref_t, rtol=1e-3, atol=1e-7)
    assert torch.allclose(got_s.double(), ref_s, rtol=1e-3, atol=1e-7)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 7), st.integers(1, 12),
       st.sampled_from([1.0, 0.3]))
def test_fused_cross_entropy_equals_torch(seed: int, rows: int, cols: int, scale: float) -> None:
    g = torch.Generator().manual_seed(seed)
    z = (torch.randn(rows, cols, generator=g, dtype=torch.float64) * 4).requires_grad_(True)
    target = torch.randint(cols, (rows,), generator=g)
    ref = F.cross_entropy(z, target)
    (ref_g,) = torch.autograd.grad(ref * scale, z)
    got = fused_cross_entropy(z, target)
    (got_g,) = torch.autograd.grad(got * scale, z)  # scale 1: the gradient handed on as is
    assert got.item() == pytest.approx(ref.item(), rel=1e-12)
    assert torch.allclose(got_g, ref_g, rtol=1e-10, atol=1e-14)
    with torch.no_grad():  # no graph: the plain loss
        assert fused_cross_entropy(z, target).item() == pytest.approx(ref.item(), rel=1e-12)


@pytest.mark.parametrize("gap", [0.0, 50.0, 120.0, 900.0])
def test_fused_cross_entropy_where_the_target_probability_underflows(gap: float) -> None:
    """float32 logits whose target lies ``gap`` below the others: from 120 on its softmax
    probability is zero, and the loss comes from the logits (finite, equal to torch's)."""
    z = torch.zeros(3, 6)
    z[:, 0] = -gap
    z[1, 2] = 5.0
    z.requires_grad_(True)
    target = torch.tensor([0, 0, 3])
    ref = F.cross_entropy(z, target)
    (ref_g,) = torch.autograd.grad(ref, z)
    got = fused_cross_entropy(z, target)
    (got_g,) = torch.autograd.grad(got, z)
    assert torch.isfinite(got)
    assert got.item() == pytest.approx(ref.item(), rel=1e-6)
    assert torch.allclose(got_g, ref_g, atol=1e-7)


def test_fused_losses_hand_on_unscaled_gradients_only_once(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """Backward twice through one graph (retain_graph): the saved gradient is never scaled in
    place, and the mutual loss gives the same gradients over several row blocks."""
    import metasd_pyg.training.losses as losses

    monkeypatch.setattr(losses, "CPU_BLOCK_ELEMENTS", 20)  # blocks of 2 rows
    g = torch.Generator().manual_seed(3)
    zt = (torch.randn(5, 9, generator=g, dtype=torch.float64) * 3).requires_grad_(True)
    zs = (torch.randn(5, 9, generator=g, dtype=torch.float64) * 3).requires_grad_(True)
    target = torch.randint(9, (5,), generator=g)
    w = MutualWeights(2.0, KLWeights(3.0, 1.0), 0.5, 1.5, 1.0, 0.7)
    ref = (entity_cross_entropy(zt, target) + 0.5 * distillation_loss(zt, zs.detach(), 2.0)
           + 0.7 * (entity_cross_entropy(zs, target)
                    + 1.5 * distillation_loss(zs, zt.detach(), 2.0)))
    ref_g = torch.autograd.grad(ref, [zt, zs])
    loss = mutual_logit_loss(zt, zs, target, w) + fused_cross_entropy(zt, target)
    first = [t.clone() for t in torch.autograd.grad(loss, [zt, zs], retain_graph=True)]
    second = torch.autograd.grad(loss, [zt, zs])
    ce_g = torch.autograd.grad(F.cross_entropy(zt, target), zt)[0]
    assert torch.allclose(first[0], ref_g[0] + ce_g, rtol=1e-9, atol=1e-12)
    assert torch.allclose(first[1], ref_g[1], rtol=1e-9, atol=1e-12)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def _dura_loop(ent: list[torch.Tensor], rel: list[torch.Tensor], batch: torch.Tensor,
               lam: float) -> torch.Tensor:
    """DURA by its definition, one triple and one coordinate at a time (autograd through it)."""
    total = ent[0].new_zeros(())
    for h, r, t in batch.tolist():
        for k in range(ent[0].size(1)):
            h2 = sum(x[h, k] ** 2 for x in ent)
            t2 = sum(x[t, k] ** 2 for x in ent)
            r2 = sum(y[r, k] ** 2 for y in rel)
            total = total + 0.5 * (h2 + t2) + 1.5 * (h2 * r2 + t2 * r2)
    return lam * total / len(batch)


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(["complex", "distmult"]), seed=st.integers(0, 10_000),
       n=st.integers(1, 9), masked=st.booleans())
def test_dura_gradient_matches_the_definition(name: str, seed: int, n: int,
                                              masked: bool) -> None:
    """The closed-form gradient (one accumulation per table) against autograd through the
    definition: repeated rows, masked (non-leaf) tables, both bilinear models."""
    model = _model(name, seed)
    batch = _batch(seed, n)
    params = dict(model.named_parameters())
    masks = {k: torch.rand(p.shape, generator=torch.Generator().manual_seed(seed)) < 0.5
             for k, p in params.items()}
    view = apply_masks(params, masks) if masked else dict(params)
    ent = [view[k] for k in ("node_emb.weight", "node_emb_im.weight") if k in view]
    rel = [view[k] for k in ("rel_emb.weight", "rel_emb_im.weight") if k in view]
    got = dura(model, batch, 0.7, view)
    ref = _dura_loop(ent, rel, batch, 0.7)
    assert got.item() == pytest.approx(ref.item(), rel=1e-10, abs=1e-12)
    leaves = list(params.values())
    g_got = torch.autograd.grad(got * 1.3, leaves, allow_unused=True, retain_graph=True)
    g_ref = torch.autograd.grad(ref * 1.3, leaves, allow_unused=True)
    for a, b in zip(g_got, g_ref):
        if b is None:
            assert a is None or not a.any()
        else:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_dura_differentiates_twice_and_backs_up_twice() -> None:
    """Under ``create_graph`` (the meta step's virtual step) the gradient is differentiable
    and its derivative is the composition's; a retained graph can be backed up twice."""
    model = _model("complex", 3)
    batch = _batch(3, 6)
    named = dict(model.named_parameters())
    ent = [named["node_emb.weight"], named["node_emb_im.weight"]]
    rel = [named["rel_emb.weight"], named["rel_emb_im.weight"]]
    params = ent + rel

    def second(fn) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
        g = torch.autograd.grad(fn(), params, create_graph=True)
        return list(torch.autograd.grad(sum((x * x).sum() for x in g), params))

    for a, b in zip(second(lambda: dura(model, batch, 0.4)),
                    second(lambda: _dura_loop(ent, rel, batch, 0.4))):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    loss = dura(model, batch, 0.4)
    first = [g.clone() for g in torch.autograd.grad(loss, params, retain_graph=True)]
    for a, b in zip(first, torch.autograd.grad(loss, params)):
        torch.testing.assert_close(a, b)


def test_a_zero_weight_computes_nothing_but_still_checks_the_model() -> None:
    model = _model("complex")
    batch = _batch(2)
    out = regularizer("dura", model, batch, 0.0)
    assert out.item() == 0.0 and not out.requires_grad
    with pytest.raises(ConfigError, match="dura"):
        regularizer("dura", _model("rotate"), batch, 0.0)
    with pytest.raises(ConfigError, match="l7"):
        regularizer("l7", model, batch, 0.0)
