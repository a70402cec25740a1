r"""A complex modulus that stays differentiable on pruned (zero) coordinates.

Regularisers such as N3 (Lacroix et al. 2018, https://arxiv.org/abs/1806.07297)
and DURA (Zhang et al. 2020, https://arxiv.org/abs/2011.05816) use
:math:`|z| = \sqrt{a^2 + b^2}`. Its autograd gradient
:math:`a / \sqrt{a^2+b^2}` is ``0/0 = nan`` at :math:`z = 0`, which is where
every masked coordinate of the student sits; the ``nan`` then spreads to all
weights. :func:`safe_modulus` returns

.. math::
    m(a, b) = \begin{cases} \operatorname{hypot}(a, b) & |z| > \varepsilon \\
                            0 & \text{otherwise} \end{cases}

computed with the double-``where`` trick: on the zero branch the hypot sees
the dummy input :math:`(1, 0)`, so no ``nan``/``inf`` is ever formed, and the
gradient there is exactly 0 (a valid subgradient). ``hypot`` avoids the
underflow of :math:`a^2 + b^2` for tiny non-zero entries, so with the default
:math:`\varepsilon = 0` the value equals the exact modulus at every non-zero
entry and the gradient :math:`z/|z|` is bounded by 1 everywhere. Second
derivatives (needed by the meta step) are finite at exact zeros as well.
"""

from __future__ import annotations

import torch
from torch import Tensor


def safe_modulus(re: Tensor, im: Tensor, eps: float = 0.0) -> Tensor:
    r"""Elementwise :math:`|re + i\,im|` with finite gradients at zero.

    Args:
        re: Real parts.
        im: Imaginary parts (broadcastable with ``re``).
        eps: Entries with modulus :math:`\le` ``eps`` are treated as exact
            zeros (value 0, gradient 0). The default 0 only guards exact zeros.
    """
    re, im = torch.broadcast_tensors(re, im)
    nonzero = (re != 0) | (im != 0)
    safe_re = torch.where(nonzero, re, torch.ones_like(re))
    safe_im = torch.where(nonzero, im, torch.zeros_like(im))
    mod = torch.hypot(safe_re, safe_im)
    keep = nonzero if eps <= 0 else nonzero & (mod > eps)
    return torch.where(keep, mod, torch.zeros_like(mod))
