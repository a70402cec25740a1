import torch

from metasd_pyg.pruning import safe_modulus


def test_exact_values():
    re = torch.tensor([3.0, 0.0, -1e-30, 1e-25, 0.0, 1e30])
    im = torch.tensor([4.0, 0.0, 0.0, 1e-25, -2.0, 1e30])
    got = safe_modulus(re, im)
    want = torch.hypot(re, im)
    assert torch.equal(got, want)
    assert got[0] == 5.0 and got[1] == 0.0


def test_gradients_finite_at_zero_and_tiny_values():
    re = torch.tensor([0.0, 0.0, 1e-25, 3.0, 0.0], requires_grad=True)
    im = torch.tensor([0.0, 1e-30, 0.0, 4.0, 0.0], requires_grad=True)
    # N3-like |z|^3 and plain |z| losses
    for p in (1, 3):
        gr, gi = torch.autograd.grad(safe_modulus(re, im).pow(p).sum(), (re, im))
        assert bool(torch.isfinite(gr).all() and torch.isfinite(gi).all())
        assert gr[0] == 0 and gi[0] == 0
    gr, gi = torch.autograd.grad(safe_modulus(re, im).sum(), (re, im))
    torch.testing.assert_close(gr[3], torch.tensor(0.6))
    torch.testing.assert_close(gi[3], torch.tensor(0.8))
    # unsafe reference turns NaN at exact zeros
    naive = torch.autograd.grad(torch.sqrt(re**2 + im**2).sum(), re)[0]
    assert bool(torch.isnan(naive[0]))


def test_second_order_finite_on_masked_rows():
    w_re = torch.randn(4, 3)
    w_im = torch.randn(4, 3)
    mask = torch.tensor([[True, False, False]] * 4)
    re = w_re.requires_grad_()
    im = w_im.requires_grad_()
    loss = safe_modulus(re * mask, im * mask).pow(3).sum()
    (g,) = torch.autograd.grad(loss, re, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), re)
    assert bool(torch.isfinite(g).all() and torch.isfinite(h).all())
    assert bool((g[:, 1:] == 0).all())


def test_eps_treats_small_entries_as_zero():
    re = torch.tensor([1e-6, 1.0], requires_grad=True)
    out = safe_modulus(re, torch.zeros(2), eps=1e-3)
    assert out.tolist() == [0.0, 1.0]
    out.sum().backward()
    assert re.grad.tolist() == [0.0, 1.0]
